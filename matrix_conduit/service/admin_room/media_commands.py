"""Admin room commands about the content repository: `list-media` and `delete-media`.

Uploads of this server, chosen by `mxc://` URI or by uploader, within a
time range (`--older-than 30d`, `--newer-than 2h`: their upload time).
Deleting goes through `Media.delete_local` (record, thumbnails, and the file
unless other media shares it); other servers' media kept here is not theirs
to delete from this room (the admin API quarantines it).
"""

from __future__ import annotations

import argparse
from typing import Any

from ...errors import MatrixError
from ..clock import now_ms
from .parsing import Command, Reply, parse_duration_ms
from .room import CommandContext, new_parser

MAX_LISTED = 500


def _selected(
    context: CommandContext, args: argparse.Namespace
) -> list[tuple[str, dict[str, Any]]]:
    """The uploads `--user`, `--older-than` and `--newer-than` pick, oldest first."""
    services = context.services
    user_id = None
    if args.user is not None:
        user_id = services.users.local_user_id(args.user)
        if user_id is None:
            raise MatrixError(400, "M_INVALID_PARAM", f"{args.user!r} is not a local user.")
    now = now_ms()
    chosen = []
    for media_id, metadata in services.media.local_uploads():
        created = int(metadata.get("created_ts") or 0)
        if user_id is not None and metadata.get("uploader") != user_id:
            continue
        if args.older_than is not None and created > now - args.older_than:
            continue
        if args.newer_than is not None and created < now - args.newer_than:
            continue
        chosen.append((media_id, metadata))
    chosen.sort(key=lambda item: (item[1].get("created_ts") or 0, item[0]))
    return chosen


def _mxc(context: CommandContext, media_id: str) -> str:
    return f"mxc://{context.services.config.server_name}/{media_id}"


async def list_media(context: CommandContext, args: argparse.Namespace) -> Reply:
    chosen = _selected(context, args)
    lines = [
        f"{_mxc(context, media_id)}  {metadata.get('uploader')}  "
        f"{metadata.get('size')} bytes  {metadata.get('content_type')}  "
        f"created_ts {metadata.get('created_ts')}"
        for media_id, metadata in chosen[:MAX_LISTED]
    ]
    more = f" (the first {MAX_LISTED} shown)" if len(chosen) > MAX_LISTED else ""
    return Reply.with_code(f"{len(chosen)} uploads{more}:", "\n".join(lines))


async def delete_media(context: CommandContext, args: argparse.Namespace) -> Reply:
    media = context.services.media
    if args.mxc:
        if args.user or args.older_than is not None or args.newer_than is not None:
            return Reply.text("Name media by mxc URI or choose it by --user/time, not both.")
        targets = []
        for uri in args.mxc:
            server_name, _, media_id = uri.removeprefix("mxc://").partition("/")
            if not uri.startswith("mxc://") or not media_id:
                return Reply.text(f"{uri!r} is not an mxc://server/media_id URI.")
            targets.append((server_name, media_id))
    elif args.user or args.older_than is not None or args.newer_than is not None:
        server_name = context.services.config.server_name
        targets = [(server_name, media_id) for media_id, _ in _selected(context, args)]
    else:
        return Reply.text("Say which media: mxc URIs, or --user and/or --older-than/--newer-than.")
    deleted, failed = [], []
    for server_name, media_id in targets:
        try:
            media.delete_local(server_name, media_id)
            deleted.append(f"mxc://{server_name}/{media_id}")
        except MatrixError as error:
            failed.append(f"mxc://{server_name}/{media_id}: {error.message}")
    report = [f"deleted: {line}" for line in deleted] + [f"not deleted: {line}" for line in failed]
    return Reply.with_code(f"Deleted {len(deleted)} of {len(targets)} media.", "\n".join(report))


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", help="only uploads of this local user")
    parser.add_argument(
        "--older-than", type=parse_duration_ms, metavar="DURATION", help="uploaded before (30d)"
    )
    parser.add_argument(
        "--newer-than", type=parse_duration_ms, metavar="DURATION", help="uploaded within (2h)"
    )


def commands() -> list[Command]:
    listing = new_parser("list-media", "List this server's uploads, by user and time.")
    _add_selection(listing)
    delete = new_parser(
        "delete-media", "Delete uploads: named by mxc URI, or chosen by user and time."
    )
    delete.add_argument("mxc", nargs="*", help="mxc://server/media_id URIs")
    _add_selection(delete)
    return [Command(listing, list_media), Command(delete, delete_media)]

"""The HTTP API: thin handlers that parse, authenticate, call a service and shape JSON.

One module per spec area; each exposes a `blueprint`. Handlers never decide
policy and never touch a tree (DESIGN.md).
"""

from __future__ import annotations

from quart import Blueprint


def blueprints() -> list[Blueprint]:
    """Every blueprint of the API, in the order they are registered."""
    from . import well_known
    from .client import (
        account,
        account_data,
        admin,
        appservice,
        capabilities,
        devices,
        directory,
        filter,
        key_backup,
        keys,
        legacy_sync,
        media,
        membership,
        messages,
        mutual_rooms,
        openid,
        presence,
        profile,
        push,
        receipts,
        register,
        relations,
        reporting,
        rooms,
        search,
        session,
        sliding_sync,
        spaces,
        state,
        summary,
        sync,
        third_party,
        threepid,
        to_device,
        typing,
        url_previews,
        user_directory,
        versions,
        voip,
    )
    from .federation import devices as federation_devices
    from .federation import directory as federation_directory
    from .federation import e2e_keys as federation_e2e_keys
    from .federation import events as federation_events
    from .federation import hierarchy as federation_hierarchy
    from .federation import keys as federation_keys
    from .federation import media as federation_media
    from .federation import membership as federation_membership
    from .federation import openid as federation_openid
    from .federation import query as federation_query
    from .federation import third_party_invites as federation_third_party_invites
    from .federation import transactions as federation_transactions
    from .federation import version
    from .synapse_admin import blueprint as synapse_admin

    return [
        versions.blueprint,
        well_known.blueprint,
        version.blueprint,
        register.blueprint,
        session.blueprint,
        account.blueprint,
        threepid.blueprint,
        devices.blueprint,
        profile.blueprint,
        mutual_rooms.blueprint,
        summary.blueprint,
        legacy_sync.blueprint,
        rooms.blueprint,
        membership.blueprint,
        messages.blueprint,
        state.blueprint,
        directory.blueprint,
        appservice.blueprint,
        sync.blueprint,
        sliding_sync.blueprint,
        account_data.blueprint,
        filter.blueprint,
        typing.blueprint,
        receipts.blueprint,
        presence.blueprint,
        keys.blueprint,
        to_device.blueprint,
        key_backup.blueprint,
        push.blueprint,
        media.blueprint,
        url_previews.blueprint,
        capabilities.blueprint,
        voip.blueprint,
        reporting.blueprint,
        user_directory.blueprint,
        openid.blueprint,
        federation_openid.blueprint,
        federation_keys.blueprint,
        federation_transactions.blueprint,
        federation_events.blueprint,
        federation_devices.blueprint,
        federation_e2e_keys.blueprint,
        federation_membership.blueprint,
        federation_query.blueprint,
        federation_third_party_invites.blueprint,
        federation_media.blueprint,
        federation_directory.blueprint,
        federation_hierarchy.blueprint,
        relations.blueprint,
        search.blueprint,
        spaces.blueprint,
        third_party.blueprint,
        admin.blueprint,
        synapse_admin,
    ]

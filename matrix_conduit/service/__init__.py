"""The homeserver's behaviour, one service per concern; no HTTP objects in here.

`Services` builds every service over one open database and is what the API
layer calls. Each service declares the trees it owns at the top of its module
(`TREES`); no other service reads them.
"""

from __future__ import annotations

from ..config import Config
from ..storage import Database
from .globals import Globals


class Services:
    """Every service of one running server, over one database."""

    def __init__(self, config: Config, db: Database) -> None:
        self.config = config
        self.db = db
        self.globals = Globals(db, config.server_name)

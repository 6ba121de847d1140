"""SCF entry point: `index.main_handler`. Settings are read once, when the container starts."""
import os
from typing import Any

from handlers.app import App, create, misconfigured

_app = create(os.environ)


def main_handler(event: Any, context: Any) -> dict[str, Any]:
    if not isinstance(_app, App):
        return misconfigured(_app)
    return _app.handle(event, context)

"""The remote servers a person added (``Settings.remote_endpoints``): add, find, remove and test them.

The window's Remote servers dialog and ``macapp remotes`` both go through here. A key is either kept in the
platform's keychain (``core.secrets``; settings hold only ``api_key_ref``, its entry's name) or, with
``api_key_env``, read from an environment variable whenever the server is used. Removing a server removes its key.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from macapp.core.engines.remote import RemoteEndpoint, RemoteModel, api_base, configured_endpoints, list_remote_models
from macapp.core.errors import UserError
from macapp.core.secrets import KeychainUnavailable, delete_secret, remote_key_ref, store_secret
from macapp.core.settings import Settings, update_settings

log = logging.getLogger(__name__)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def add_endpoint(
    name: str, url: str, api_key: str | None = None, api_key_env: str | None = None, settings_path: Path | None = None
) -> RemoteEndpoint:
    """Save a new remote server (name, URL and a key or the variable that holds it); nothing is contacted.

    The key goes into the keychain; where there is none, a ``UserError`` says so (and suggests a variable)."""
    name, url = name.strip(), url.strip()
    api_key = (api_key or "").strip()
    api_key_env = (api_key_env or "").strip()
    if not name or "/" in name or name != name.split()[0]:
        raise UserError("give the server a name without “/” or spaces", hint="it names its models: remote:NAME/MODEL")
    api_base(url)  # refuses what is not an http(s) URL
    if api_key and api_key_env:
        raise UserError("give the API key or the variable that holds it, not both")
    if api_key_env:
        if not _ENV_NAME.match(api_key_env):
            raise UserError(f"{api_key_env!r} is not an environment variable name", hint="e.g. OPENAI_API_KEY")
        if not os.environ.get(api_key_env):
            raise UserError(f"${api_key_env} is not set", hint="export it first; Orchard reads it each time")
    saved: dict[str, str] = {"name": name, "url": url}
    if api_key:
        saved["api_key_ref"] = remote_key_ref(name)
    if api_key_env:
        saved["api_key_env"] = api_key_env

    def add(settings: Settings) -> None:
        if any(isinstance(e, dict) and e.get("name") == name for e in settings.remote_endpoints):
            raise UserError(f"there is already a server named {name!r}", hint="remove it first, or pick another name")
        if api_key:  # under the settings lock, after the name is known to be free: no other server's key is replaced
            try:
                store_secret(saved["api_key_ref"], api_key)
            except KeychainUnavailable as exc:
                raise UserError(
                    f"{exc.message}; the API key was not saved",
                    hint=f"{exc.hint}; or keep the key in an environment variable (Read the key from an "
                    "environment variable in Remote servers…, or macapp remotes add --api-key-env)",
                ) from exc
        settings.remote_endpoints.append(saved)

    update_settings(add, settings_path)
    return RemoteEndpoint.from_json(saved)


def get_endpoint(name: str, settings: Settings | None = None) -> RemoteEndpoint:
    """The saved server called ``name``."""
    endpoints = {e.name: e for e in configured_endpoints(settings)}
    if name not in endpoints:
        known = ", ".join(sorted(endpoints)) or "none yet"
        raise UserError(f"no remote server named {name!r}", hint=f"known: {known}")
    return endpoints[name]


def remove_endpoint(name: str, settings_path: Path | None = None) -> RemoteEndpoint:
    """Forget the server called ``name`` and its key in the keychain; returns it as it was saved."""
    endpoint = get_endpoint(name, Settings.load(settings_path))
    update_settings(
        lambda s: setattr(
            s,
            "remote_endpoints",
            [e for e in s.remote_endpoints if not (isinstance(e, dict) and e.get("name") == name)],
        ),
        settings_path,
    )
    if endpoint.api_key_ref:
        try:
            delete_secret(endpoint.api_key_ref)
        except KeychainUnavailable as exc:  # the server is gone either way; a key left behind is replaced on re-add
            log.warning("could not delete the API key of %s from the keychain: %s", name, exc)
    return endpoint


def endpoint_models(endpoint: RemoteEndpoint) -> list[RemoteModel]:
    """Connect to the server and list the models it serves (a clear ``UserError`` when it cannot)."""
    return list_remote_models(endpoint.url, endpoint.resolve_key())

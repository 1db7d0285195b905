"""Secrets (remote servers' API keys) in the platform's keychain through ``keyring``: the macOS Keychain, the
Secret Service (GNOME Keyring, KWallet) on Linux, the Windows Credential Locker. Settings keep only a reference
(the secret's name, e.g. ``remote:gpu-box``); the value never reaches ``settings.json``.

Where no usable keychain exists (keyring's ``fail`` or ``null`` backend: no Secret Service on a Linux box
without a desktop session) or the keychain refuses (locked, a dismissed prompt), every call raises
``KeychainUnavailable``, a ``UserError`` that says what to do. A secret is read back after it is stored, so a
keychain that silently drops what it is given is found out before anything relies on it.
"""

from __future__ import annotations

import logging
import sys

from macapp.core.errors import UserError

log = logging.getLogger(__name__)

SERVICE = "Orchard"  # the keychain entries' service (macOS: the item's "Where"; Secret Service: its "service")


class KeychainUnavailable(UserError):
    """No keychain to keep secrets in, or it refused the request."""


def remote_key_ref(endpoint_name: str) -> str:
    """The name of the secret holding the API key of the remote server ``endpoint_name``."""
    return f"remote:{endpoint_name}"


def _hint() -> str:
    if sys.platform == "darwin":
        return "unlock your login keychain (Keychain Access) and try again"
    if sys.platform == "win32":
        return "Windows Credential Manager is needed"
    return "install and unlock a Secret Service such as gnome-keyring or KWallet; a desktop session starts one"


def _unavailable(detail: str) -> KeychainUnavailable:
    return KeychainUnavailable(f"No keychain is available on this machine: {detail}", hint=_hint())


def _backend():
    """The keyring backend, or ``KeychainUnavailable`` when it is one that cannot keep anything."""
    import keyring

    try:
        backend = keyring.get_keyring()
        priority = backend.priority
    except Exception as exc:  # a broken PYTHON_KEYRING_BACKEND or keyringrc
        raise _unavailable(f"the keyring backend could not be loaded ({exc})") from exc
    # fail.Keyring (nothing found) has priority 0, null.Keyring and an empty chainer -1: none keeps a secret.
    if priority <= 0:
        raise _unavailable("keyring found no backend that can keep secrets")
    return backend


def _call(what: str, operation):
    from keyring.errors import KeyringError, NoKeyringError

    try:
        return operation()
    except NoKeyringError as exc:
        raise _unavailable(str(exc)) from exc
    except KeyringError as exc:  # locked, a dismissed prompt, the daemon went away
        raise KeychainUnavailable(f"the keychain refused to {what}: {exc or type(exc).__name__}", hint=_hint()) from exc
    except Exception as exc:  # a backend's own error (D-Bus, Security framework): the keychain, not Orchard
        log.warning("keychain failed to %s", what, exc_info=True)
        raise KeychainUnavailable(f"the keychain failed to {what}: {exc}", hint=_hint()) from exc


def keychain_problem() -> str | None:
    """Why secrets cannot be kept on this machine (one line), or None when a keychain backend exists."""
    try:
        _backend()
    except KeychainUnavailable as exc:
        return str(exc)
    return None


def store_secret(name: str, value: str) -> None:
    """Keep ``value`` in the keychain under ``name`` (replacing what was there), and check it was kept."""
    if not value:
        raise ValueError("an empty secret is not stored")
    backend = _backend()
    _call("save a secret", lambda: backend.set_password(SERVICE, name, value))
    if _call("read a secret back", lambda: backend.get_password(SERVICE, name)) != value:
        raise _unavailable(f"the keychain ({type(backend).__name__}) did not keep the secret it was given")


def read_secret(name: str) -> str | None:
    """The secret saved under ``name``, or None when there is none."""
    backend = _backend()
    return _call("read a secret", lambda: backend.get_password(SERVICE, name))


def delete_secret(name: str) -> None:
    """Forget the secret saved under ``name`` (nothing happens when there is none)."""
    backend = _backend()
    if _call("read a secret", lambda: backend.get_password(SERVICE, name)) is None:
        return
    _call("delete a secret", lambda: backend.delete_password(SERVICE, name))


def keyring_backend() -> object:
    """The keyring backend in use (to tell whether it changed), or None when none could be loaded."""
    import keyring

    try:
        return keyring.get_keyring()
    except Exception:  # noqa: BLE001 - a broken keyring setup raises anything; it means no backend
        return None

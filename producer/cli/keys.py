"""`kirim keys`: make the secrets a deployment needs, offline (nothing is stored).

- `kirim keys new NAME [--scopes send+read]`: an API key, and the KIRIM_API_KEYS entry that
  holds only its hash. The key is printed once: give it to the service, keep only the entry.
- `kirim keys secret`: a Standard Webhooks signing secret (`whsec_…`) for KIRIM_CALLBACK_SECRETS.
- `kirim keys token`: a random token for KIRIM_CALLBACK_TOKEN or KIRIM_HASH_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

import typer

from producer.core.tenants import KEY_NAME, Scope

app = typer.Typer(no_args_is_help=True, help="Make API keys, callback secrets and tokens.")


@app.command()
def new(name: str = typer.Argument(..., help="the key's name: the source of its messages"),
        scopes: str = typer.Option("send+read", help="send, read, admin, joined by +"),
        as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """A new API key and its KIRIM_API_KEYS entry (only the entry goes in the settings)."""
    if not KEY_NAME.fullmatch(name):
        raise typer.BadParameter("letters, digits, _ . - only (at most 64)", param_hint="NAME")
    try:
        granted = sorted({Scope(s.strip()) for s in scopes.split("+") if s.strip()})
    except ValueError:
        raise typer.BadParameter("scopes are send, read or admin joined by +",
                                 param_hint="--scopes") from None
    if not granted:
        raise typer.BadParameter("give at least one scope", param_hint="--scopes")
    key = f"kk_{secrets.token_urlsafe(32)}"
    suffix = "" if set(granted) == {Scope.SEND, Scope.READ} else ":" + "+".join(granted)
    entry = f"{name}:{hashlib.sha256(key.encode()).hexdigest()}{suffix}"
    if as_json:
        typer.echo(json.dumps({"name": name, "key": key, "entry": entry}))
        return
    typer.echo(f"key (give it to the service; it is not stored anywhere): {key}")
    typer.echo(f"KIRIM_API_KEYS entry (append with a comma): {entry}")


@app.command()
def secret() -> None:
    """A callback signing secret: add `name:<it>` to KIRIM_CALLBACK_SECRETS."""
    typer.echo("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())


@app.command()
def token() -> None:
    """A random token (43 characters) for KIRIM_CALLBACK_TOKEN or KIRIM_HASH_KEY."""
    typer.echo(secrets.token_urlsafe(32))

"""Per-person accounts of the operator station (issue 18 item 6).

An accounts file (YAML, ``--accounts FILE``) lists the people who may use the station:

    accounts:
      - name: alice
        roles: [operator]
        secret: "scrypt$16384$8$1$<salt>$<hash>"     # password or PIN, salted scrypt hash
        badge: "sha256$<hex>"                        # optional: the badge's code, hashed

It is written by ``bench station account add NAME --role operator [--badge]``, which asks for
the password or PIN (never on the command line) and stores only its salted hash: the standard
library's ``hashlib.scrypt`` (RFC 7914), 16 random bytes of salt per secret, compared in constant
time. A badge is an identifier, not a secret: scanning it fills in *who*, the PIN proves it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import unicodedata
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bench.errors import InputError
from bench.yamlio import load_model

Role = Literal["operator", "engineer"]
ROLE_NAMES = ("operator", "engineer")
#: scrypt cost: 2^14 x 8 x 1 takes ~50 ms and 16 MiB here, the RFC 7914 interactive-login setting
_N, _R, _P = 2**14, 8, 1
#: a PIN shorter than this is guessed in minutes even with the login rate limit
MIN_SECRET_CHARS = 4


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(secret.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                                p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def badge_id(code: str) -> str:
    return "sha256$" + hashlib.sha256(code.strip().encode()).hexdigest()


#: a dummy hash compared against when the name is unknown, so a wrong name takes as long as a wrong PIN
_DUMMY = hash_secret("not a secret", salt=b"\0" * 16)


class Account(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=60)]
    roles: Annotated[list[Role], Field(min_length=1)]
    secret: str
    badge: str | None = None

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(unicodedata.category(ch)[0] in "CZ" and ch != " " for ch in value):
            raise ValueError("a name holds no control or invisible characters")
        return value

    @field_validator("secret")
    @classmethod
    def _hashed(cls, value: str) -> str:
        if not value.startswith("scrypt$") or value.count("$") != 5:
            raise ValueError("not a salted hash: set it with `bench station account add`")
        return value


class AccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: list[Account] = Field(default_factory=list)


class Accounts:
    def __init__(self, path: Path, accounts: list[Account]) -> None:
        self.path = path
        self.accounts = accounts

    @classmethod
    def load(cls, path: str | Path) -> Accounts:
        path = Path(path)
        if not path.is_file():
            raise InputError("accounts file not found (create it with `bench station account add`)",
                             file=str(path), field="--accounts")
        model = load_model(AccountsFile, path)
        names = [a.name.casefold() for a in model.accounts]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise InputError(f"account {duplicate!r} is listed twice", file=str(path), field="accounts")
        return cls(path, list(model.accounts))

    @classmethod
    def load_or_new(cls, path: str | Path) -> Accounts:
        path = Path(path)
        return cls.load(path) if path.exists() else cls(path, [])

    def find(self, name_or_badge: str) -> Account | None:
        key = name_or_badge.strip()
        badge = badge_id(key)
        for account in self.accounts:
            if account.name.casefold() == key.casefold() or (account.badge and hmac.compare_digest(
                    account.badge, badge)):
                return account
        return None

    def authenticate(self, name_or_badge: str, secret: str) -> Account | None:
        account = self.find(name_or_badge)
        ok = verify_secret(secret, account.secret if account is not None else _DUMMY)
        return account if ok and account is not None else None

    def set(self, name: str, roles: list[Role], secret: str, badge: str | None = None) -> Account:
        if len(secret) < MIN_SECRET_CHARS:
            raise InputError(f"a password or PIN needs at least {MIN_SECRET_CHARS} characters", field="secret")
        account = Account(name=name, roles=roles, secret=hash_secret(secret),
                          badge=badge_id(badge) if badge else None)
        self.accounts = [a for a in self.accounts if a.name.casefold() != name.casefold()] + [account]
        return account

    def remove(self, name: str) -> bool:
        before = len(self.accounts)
        self.accounts = [a for a in self.accounts if a.name.casefold() != name.casefold()]
        return len(self.accounts) != before

    def save(self) -> None:
        data = {"accounts": [a.model_dump(exclude_none=True) for a in self.accounts]}
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # hashes only, still private
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write("# operator station accounts: edit with `bench station account add/remove`\n")
            yaml.safe_dump(data, stream, sort_keys=False)
        tmp.replace(self.path)

"""The depot's secret key file and the signed, expiring tokens in mailed links."""

import os
import stat
import threading
from pathlib import Path

import pytest

from neurodepot.access.signed import SECRET_FILE, claimed_subject, secret_key, sign, unsign
from neurodepot.errors import ExpiredToken, InvalidToken, Unavailable

KEY = b"k" * 32


class TestSecretKey:
    def test_is_made_once_with_mode_0600(self, tmp_path: Path) -> None:
        key = secret_key(tmp_path)
        path = tmp_path / SECRET_FILE
        assert len(key) == 32
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert secret_key(tmp_path) == key
        assert os.listdir(tmp_path) == [SECRET_FILE]

    def test_is_made_with_mode_0600_whatever_the_umask(self, tmp_path: Path) -> None:
        previous = os.umask(0)
        try:
            secret_key(tmp_path)
        finally:
            os.umask(previous)
        assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600

    def test_processes_racing_to_make_it_all_get_the_same_key(self, tmp_path: Path) -> None:
        keys: list[bytes] = []
        start = threading.Barrier(8)

        def make() -> None:
            start.wait()
            keys.append(secret_key(tmp_path))

        threads = [threading.Thread(target=make) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(keys) == 8 and len(set(keys)) == 1
        assert os.listdir(tmp_path) == [SECRET_FILE]

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o666])
    def test_one_open_to_others_is_refused_saying_chmod_600(
        self, tmp_path: Path, mode: int
    ) -> None:
        secret_key(tmp_path)
        path = tmp_path / SECRET_FILE
        path.chmod(mode)
        with pytest.raises(Unavailable, match="chmod 600") as raised:
            secret_key(tmp_path)
        assert str(path) in raised.value.message
        path.chmod(0o600)
        assert len(secret_key(tmp_path)) == 32

    def test_a_symlink_is_refused(self, tmp_path: Path) -> None:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        secret_key(elsewhere)
        root = tmp_path / "depot"
        root.mkdir()
        (root / SECRET_FILE).symlink_to(elsewhere / SECRET_FILE)
        with pytest.raises(Unavailable, match="secret key"):
            secret_key(root)

    def test_a_folder_it_cannot_be_made_in_is_unavailable(self, tmp_path: Path) -> None:
        not_a_folder = tmp_path / "file"
        not_a_folder.write_text("")
        with pytest.raises(Unavailable, match="cannot create"):
            secret_key(not_a_folder)

    @pytest.mark.parametrize("content", [b"", b"short", b"x" * 33])
    def test_a_damaged_key_is_refused(self, tmp_path: Path, content: bytes) -> None:
        path = tmp_path / SECRET_FILE
        path.write_bytes(content)
        path.chmod(0o600)
        with pytest.raises(Unavailable, match="damaged"):
            secret_key(tmp_path)


class TestTokens:
    def test_a_token_gives_back_its_subject(self) -> None:
        token = sign(KEY, "verify-email", "42", 60, bind="ann@example.org")
        assert unsign(KEY, "verify-email", token, bind="ann@example.org") == "42"
        assert claimed_subject(token) == "42"
        assert all(c.isalnum() or c in "-_." for c in token)  # safe in a URL as it is

    def test_any_subject_survives(self) -> None:
        subject = "a.b|c\u00e9\U0001f9e0=="
        assert unsign(KEY, "p", sign(KEY, "p", subject, 60)) == subject

    @pytest.mark.parametrize(
        ("key", "purpose", "bind"),
        [(b"o" * 32, "p", "b"), (KEY, "other", "b"), (KEY, "p", "changed"), (KEY, "p", "")],
        ids=["other key", "other purpose", "other bind", "no bind"],
    )
    def test_a_token_checked_against_anything_else_is_invalid(
        self, key: bytes, purpose: str, bind: str
    ) -> None:
        token = sign(KEY, "p", "42", 60, bind="b")
        with pytest.raises(InvalidToken, match="not valid") as raised:
            unsign(key, purpose, token, bind=bind)
        assert not isinstance(raised.value, ExpiredToken)

    def test_changing_any_part_makes_it_invalid(self) -> None:
        subject, expiry, mac = sign(KEY, "p", "42", 60).split(".")
        other_subject = sign(KEY, "p", "43", 60).split(".")[0]
        flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
        for token in (
            f"{other_subject}.{expiry}.{mac}",
            f"{subject}.{int(expiry) + 3600}.{mac}",
            f"{subject}.{expiry}.{flipped}",
            f"{subject}.{expiry}.",
            f"{subject}.{expiry}.{mac}=",
            f"{subject}.{expiry}.{mac}.x",
        ):
            with pytest.raises(InvalidToken):
                unsign(KEY, "p", token)

    def test_an_expired_token_has_its_own_message(self) -> None:
        token = sign(KEY, "p", "42", -1)
        with pytest.raises(ExpiredToken, match="expired"):
            unsign(KEY, "p", token)

    def test_an_expired_forgery_is_invalid_not_expired(self) -> None:
        token = sign(b"o" * 32, "p", "42", -1)
        with pytest.raises(InvalidToken) as raised:
            unsign(KEY, "p", token)
        assert not isinstance(raised.value, ExpiredToken)

    @pytest.mark.parametrize(
        "token",
        ["", ".", "..", "a.b", "a.b.c.d", "MQ.-5.AAAA", "MQ.1e9.AAAA", "MQ.\u0661.AAAA",
         "M Q.1.AAAA", "MQ.1.AA+A", "_w.1.AAAA", "A.1.AAAA", "MQ.1234567890123.AAAA"],
    )  # fmt: skip
    def test_a_malformed_token_is_invalid(self, token: str) -> None:
        with pytest.raises(InvalidToken, match="not valid"):
            unsign(KEY, "p", token)
        with pytest.raises(InvalidToken):
            claimed_subject(token)

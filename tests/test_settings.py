"""Settings: every DISCOURSE_* variable typed and checked; a bad one stops start-up with one line.

Unit tests of :meth:`Settings.from_env`, then the real Procfile command: each
bad environment must end with exit status 2 and exactly one line on stderr
naming the variable, before anything listens.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from service.config import (
    DEFAULT_MODEL_DIR,
    MIN_KEY_CHARS,
    PROJECT_ROOT,
    Settings,
    SettingsError,
    bind_address,
    cors_origin,
    platform_int,
)
from tests.conftest import free_port, procfile_command

KEY = "k" * MIN_KEY_CHARS


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DISCOURSE_API_KEY": KEY}, "DISCOURSE_API_KEY: unknown setting; did you mean DISCOURSE_API_KEYS?"),
        ({"DISCOURSE_FOO": "1"}, "DISCOURSE_FOO: unknown setting"),
        ({"DISCOURSE_API_KEYS": ""}, "DISCOURSE_API_KEYS='': is set but empty"),
        ({"DISCOURSE_API_KEYS": " , "}, "DISCOURSE_API_KEYS=' , ': is set but empty"),
        ({"DISCOURSE_API_KEYS": f"{KEY},"}, "has an empty entry"),
        (
            {"DISCOURSE_API_KEYS": "a"},
            f"DISCOURSE_API_KEYS entry 1 ('key-1'): the key has 1 characters, at least {MIN_KEY_CHARS}",
        ),
        ({"DISCOURSE_API_KEYS": f"ci:{KEY[:-1]}"}, "DISCOURSE_API_KEYS entry 1 ('ci')"),
        ({"DISCOURSE_METRICS_REQUIRE_KEY": "true"}, "DISCOURSE_METRICS_REQUIRE_KEY=true needs keys"),
        (
            {"DISCOURSE_METRICS_REQUIRE_KEY": "maybe"},
            "DISCOURSE_METRICS_REQUIRE_KEY='maybe': expected true or false",
        ),
        ({"DISCOURSE_RATE_LIMIT": "lots"}, "DISCOURSE_RATE_LIMIT='lots': expected limits such as"),
        (
            {"DISCOURSE_RATE_LIMIT_STORAGE": "bogus://x"},
            "DISCOURSE_RATE_LIMIT_STORAGE='bogus://x': unknown storage",
        ),
        ({"DISCOURSE_RATE_LIMIT_STORAGE": "memcached://127.0.0.1:1"}, "needs the Python package pymemcache"),
        (
            {"DISCOURSE_API_KEYS_FILE": "/nonexistent/keys"},
            "DISCOURSE_API_KEYS_FILE='/nonexistent/keys': No such file",
        ),
        ({"DISCOURSE_MODEL_DIR": " "}, "DISCOURSE_MODEL_DIR=' ': is set but blank"),
        ({"DISCOURSE_MODEL_DIR": "/nonexistent"}, "DISCOURSE_MODEL_DIR='/nonexistent': not a directory"),
        ({"DISCOURSE_MAX_TEXTS": "many"}, "DISCOURSE_MAX_TEXTS='many': expected a whole number"),
        ({"DISCOURSE_DRAIN_SECONDS": "nan"}, "DISCOURSE_DRAIN_SECONDS='nan': expected a finite number"),
        ({"DISCOURSE_LOG_LEVEL": " "}, "DISCOURSE_LOG_LEVEL=' ': is set but blank"),
        ({"DISCOURSE_CORS_ORIGINS": "app.example.org"}, "entry 'app.example.org': needs a scheme"),
        ({"DISCOURSE_CORS_ORIGINS": "https://app.example.org/"}, "no path, not even a trailing slash"),
        ({"DISCOURSE_CORS_ORIGINS": "https://example.org/api"}, "expected scheme://host[:port]"),
        ({"DISCOURSE_CORS_ORIGINS": "ftp://example.org"}, "expected scheme://host[:port]"),
        ({"DISCOURSE_CORS_ORIGINS": "https://*.org"}, "a wildcard needs a domain of at least two labels"),
        ({"DISCOURSE_CORS_ORIGINS": "https://a.example.org:99999"}, "the port must be 1-65535"),
        (
            {"DISCOURSE_CORS_ORIGINS": "*,https://a.example.org"},
            "'*' allows every origin, so it must be the only entry",
        ),
        (
            {"DISCOURSE_DRAINING_FLAG": "/nonexistent/draining"},
            "DISCOURSE_DRAINING_FLAG='/nonexistent/draining': its folder",
        ),
        ({"DISCOURSE_HOST": "not a host"}, "DISCOURSE_HOST='not a host': expected an IP address"),
    ],
)
def test_a_bad_environment_is_one_error_naming_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_dir": " "}, "DISCOURSE_MODEL_DIR=' ': expected Path, not str"),
        ({"seeds_dir": None}, "DISCOURSE_SEEDS_DIR=None: expected Path, not NoneType"),
        ({"max_texts": "5"}, "DISCOURSE_MAX_TEXTS='5': expected int, not str"),
        ({"max_texts": True}, "DISCOURSE_MAX_TEXTS=True: expected int, not bool"),
        ({"request_deadline": "2"}, "DISCOURSE_REQUEST_DEADLINE='2': expected float, not str"),
        ({"api_keys": [KEY]}, "DISCOURSE_API_KEYS=["),
        ({"api_keys_file": "keys.txt"}, "DISCOURSE_API_KEYS_FILE='keys.txt': expected Path or None, not str"),
        ({"rate_limit_enabled": "false"}, "DISCOURSE_RATE_LIMIT_ENABLED='false': expected bool, not str"),
    ],
)
def test_settings_built_in_code_with_a_wrong_type_name_the_setting(changes: dict, message: str) -> None:
    """Not a TypeError or AttributeError later: the same one-line error as from the environment."""
    with pytest.raises(SettingsError) as caught:
        Settings(**changes).check()
    assert message in str(caught.value)


def test_whole_numbers_are_accepted_for_seconds() -> None:
    Settings(drain_seconds=0, request_deadline=3).check()


def test_an_empty_keys_file_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# no keys yet\n\n")
    with pytest.raises(SettingsError, match="the file holds no key"):
        Settings.from_env({"DISCOURSE_API_KEYS_FILE": str(keys)})


def test_settings_have_real_types() -> None:
    settings = Settings.from_env(
        {
            "DISCOURSE_MAX_TEXTS": " 12 ",
            "DISCOURSE_DRAIN_SECONDS": "2.5",
            "DISCOURSE_RATE_LIMIT_ENABLED": "off",
            "DISCOURSE_API_KEYS": f"ci:{KEY}, {KEY}x",
            "DISCOURSE_MODEL_DIR": str(DEFAULT_MODEL_DIR),
            "DISCOURSE_HOST": "::1",
            "NOT_OURS": "anything",
        }
    )
    assert settings.max_texts == 12
    assert settings.drain_seconds == 2.5
    assert settings.rate_limit_enabled is False
    assert settings.api_keys == (f"ci:{KEY}", f"{KEY}x")
    assert settings.model_dir == DEFAULT_MODEL_DIR
    assert bind_address(settings.host, 8000) == "[::1]:8000"
    assert bind_address("127.0.0.1", 80) == "127.0.0.1:80"


@pytest.mark.parametrize(
    ("entry", "allowed", "refused"),
    [
        (
            "https://app.example.org",
            ["https://app.example.org", "HTTPS://APP.example.org"],
            ["http://app.example.org", "https://app.example.org:8443", "https://app.example.org.evil.com"],
        ),
        ("https://app.example.org:443", ["https://app.example.org"], ["https://app.example.org:8443"]),
        ("http://localhost:8080", ["http://localhost:8080"], ["http://localhost", "http://localhost:80801"]),
        (
            "https://*.example.org",
            ["https://app.example.org", "https://a.b.example.org"],
            [
                "https://example.org",
                "https://example.org.evil.com",
                "https://app.example.org.evil.com",
                "http://app.example.org",
                "https://evilexample.org",
                "https://app.example.org:8443",
            ],
        ),
    ],
)
def test_cors_entries_match_exactly_or_by_an_anchored_pattern(
    entry: str, allowed: list[str], refused: list[str]
) -> None:
    matcher = cors_origin(entry)

    def matches(origin: str) -> bool:
        if isinstance(matcher, re.Pattern):
            return matcher.match(origin) is not None
        return origin.casefold() == matcher.casefold()

    assert all(matches(o) for o in allowed), [o for o in allowed if not matches(o)]
    assert not any(matches(o) for o in refused), [o for o in refused if matches(o)]


@pytest.mark.parametrize("value", ["abc", "0", "-1", "", "2.5", "100000"])
def test_web_concurrency_must_be_a_positive_whole_number(value: str) -> None:
    with pytest.raises(SettingsError, match=f"WEB_CONCURRENCY={value!r}: expected a whole number from 1"):
        platform_int({"WEB_CONCURRENCY": value}, "WEB_CONCURRENCY")
    assert platform_int({}, "WEB_CONCURRENCY") == 2
    assert platform_int({"PORT": "8080"}, "PORT") == 8080


# --- The real start-up ---------------------------------------------------------------------------


def _start(env: dict[str, str], tmp_path: Path) -> tuple[int, str, bool]:
    """Run the Procfile command with ``env``: exit status, output, whether its port ever listened."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCOURSE_", "PROMETHEUS_"))}
    full = {
        **clean,
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "DISCOURSE_HOST": "127.0.0.1",
        "TMPDIR": str(tmp_path),
        **env,
    }
    process = subprocess.Popen(
        procfile_command(),
        cwd=PROJECT_ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    listened = False
    while process.poll() is None:
        with socket.socket() as probe:
            listened = listened or probe.connect_ex(("127.0.0.1", port)) == 0
        if listened:
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.05)
    out, err = process.communicate()
    return process.returncode, out + err, listened


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DISCOURSE_API_KEY": KEY}, "DISCOURSE_API_KEY"),
        ({"DISCOURSE_API_KEYS": ""}, "DISCOURSE_API_KEYS"),
        ({"DISCOURSE_API_KEYS": "short"}, "DISCOURSE_API_KEYS"),
        ({"DISCOURSE_METRICS_REQUIRE_KEY": "true"}, "DISCOURSE_METRICS_REQUIRE_KEY"),
        ({"DISCOURSE_RATE_LIMIT": "lots"}, "DISCOURSE_RATE_LIMIT"),
        ({"DISCOURSE_API_KEYS_FILE": "/nonexistent/keys"}, "DISCOURSE_API_KEYS_FILE"),
        ({"DISCOURSE_RATE_LIMIT_STORAGE": "memcached://127.0.0.1:1"}, "DISCOURSE_RATE_LIMIT_STORAGE"),
        ({"WEB_CONCURRENCY": "abc"}, "WEB_CONCURRENCY"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
        ({"PORT": "http"}, "PORT"),
        ({"DISCOURSE_MODEL_DIR": " "}, "DISCOURSE_MODEL_DIR"),
        ({"DISCOURSE_CORS_ORIGINS": "app.example.org"}, "DISCOURSE_CORS_ORIGINS"),
        ({"DISCOURSE_DRAINING_FLAG": "/nonexistent/draining"}, "DISCOURSE_DRAINING_FLAG"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_bad_setting_stops_the_server_with_one_line(
    env: dict[str, str], names: str, tmp_path: Path
) -> None:
    status, output, listened = _start(env, tmp_path)
    lines = [line for line in output.splitlines() if line.strip()]
    assert status == 2, output
    assert not listened
    assert len(lines) == 1, output
    assert lines[0].startswith(f"discourse-compare: configuration error: {names}")
    assert "Traceback" not in output


@pytest.mark.e2e
def test_the_gunicorn_config_alone_also_stops_with_one_line(tmp_path: Path) -> None:
    """Started as plain gunicorn (not through the Procfile's launcher), a bad setting is still one line."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCOURSE_", "PROMETHEUS_"))}
    command = [str(Path(procfile_command()[0]).with_name("gunicorn")), *procfile_command()[3:]]
    result = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env={**clean, "PORT": str(port), "DISCOURSE_RATE_LIMIT": "lots", "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (result.stdout + result.stderr).strip().splitlines() == [
        "discourse-compare: configuration error: DISCOURSE_RATE_LIMIT='lots': expected limits such as "
        "'120/minute;20/second'"
    ]

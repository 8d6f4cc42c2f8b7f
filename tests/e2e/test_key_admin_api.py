"""The admin API (`/v2/admin`) and the `taskgate keys` / `taskgate projects` commands, given wrong,
huge, odd and hostile input: a clear 4xx JSON error (or CLI exit status 2 with a message), never a
500; and who may call it: admin keys of the project only."""

from __future__ import annotations

import subprocess
import uuid
from typing import Any

import pytest

from tests.harness import ServerProcess, taskgate_command
from tests.http_client import KEY, get, post, request
from tests.limits_helpers import call, make_key, patch_key


def create(server: ServerProcess, body: Any, key: str = KEY) -> Any:
    return post(f"{server.url}/v2/admin/keys", body, key=key)


BAD_LIMITS = [
    ({"rpm": -1}, "'rpm' must be a whole number"),
    ({"rpm": 0}, "'rpm' must be a whole number"),
    ({"rpm": 10**12}, "'rpm' must be a whole number"),
    ({"rpm": "5"}, "'rpm' must be a whole number"),
    ({"rpm": True}, "'rpm' must be a whole number"),
    ({"rpm": 2.5}, "'rpm' must be a whole number"),
    ({"tpm": -100}, "'tpm' must be a whole number"),
    ({"tpm": 10**15}, "'tpm' must be a whole number"),
    ({"budget_usd": -5}, "'budget_usd' must be a number"),
    ({"budget_usd": 0}, "'budget_usd' must be a number"),
    ({"budget_usd": 1e300}, "'budget_usd' must be a number"),
    ({"budget_usd": "10"}, "'budget_usd' must be a number"),
    ({"period": "week"}, "'period' must be one of day, month"),
    ({"period": None}, "'period' must be one of day, month"),
    ({"period": ["day"]}, "'period' must be one of day, month"),
    ({"models": "openai/*"}, "'models' must be a list"),
    ({"models": []}, "'models' must be a list"),
    ({"models": ["openai/*"] * 65}, "'models' must be a list"),
    ({"models": [""]}, "models[0] must be a string of 1 to 200"),
    ({"models": [7]}, "models[0] must be a string"),
    ({"models": ["x" * 201]}, "models[0] must be a string of 1 to 200"),
    ({"models": ["openai/[ab]"]}, "is not a model glob"),
    ({"models": ["openai/**"]}, "is not a model glob"),
    ({"models": ["/gpt-4o"]}, "is not a model glob"),
    ({"models": ["openai/gpt 4o"]}, "is not a model glob"),
    ({"models": ["openai/\u0000"]}, "is not a model glob"),
    ({"models": ["openai/../../etc/passwd"]}, None),  # a well-formed glob: it only ever matches names
    ({"models": ["nosuchvendor/gpt-4o"]}, "unknown provider 'nosuchvendor'"),
    ({"models": ["nosuchvendor/*"]}, "unknown provider 'nosuchvendor'"),
    ({"models": ["not-a-custom-model"]}, "neither provider/model nor a custom model"),
    ({"name": "x" * 201}, "'name' must be printable text"),
    ({"name": "tab\there"}, "'name' must be printable text"),
    ({"admin": "yes"}, "'admin' must be true or false"),
    ({"admin": True, "rpm": 5}, "an admin key cannot have limits"),
    ({"secret": "mine"}, "unknown fields ['secret']"),
    ({"project_id": "another"}, "unknown fields ['project_id']"),
]


@pytest.mark.parametrize(("body", "needle"), BAD_LIMITS, ids=[str(i) for i in range(len(BAD_LIMITS))])
def test_bad_limits_are_refused_when_creating_and_updating(any_server: ServerProcess, body: dict[str, Any],
                                                           needle: str | None) -> None:
    made = create(any_server, body)
    key_id, _ = make_key(any_server)
    changed = patch_key(any_server, key_id, body)
    if needle is None:
        assert made.status == 201 and changed.status == 200, (made.body, changed.body)
        return
    for reply in (made, changed):
        assert reply.status == 422, reply.body
        assert needle in reply.json()["detail"], reply.json()["detail"]


@pytest.mark.parametrize("raw", [b"[]", b"null", b"{", b'{"rpm": 1e999}', b'{"rpm": 99999999999999999999999}',
                                 b"[" * 5000 + b"]" * 5000, b'{"budget_usd": NaN}'])
def test_malformed_bodies_are_4xx(any_server: ServerProcess, raw: bytes) -> None:
    for method, path in (("POST", "/v2/admin/keys"), ("PATCH", "/v2/admin/project")):
        reply = request(method, any_server.url + path, raw=raw)
        assert 400 <= reply.status < 500, (raw[:40], reply.status, reply.body[:200])
        assert reply.json()["type"]


def test_an_odd_listing_parameter_is_a_400(any_server: ServerProcess) -> None:
    for odd in ("maybe", "yes", "%00", "x" * 5000):
        reply = get(f"{any_server.url}/v2/admin/keys?include_revoked={odd}")
        assert reply.status == 400 and "include_revoked" in reply.json()["detail"]


def test_limits_on_a_revoked_key_are_refused(any_server: ServerProcess) -> None:
    key_id, _ = make_key(any_server)
    assert request("DELETE", f"{any_server.url}/v2/admin/keys/{key_id}").status == 200
    refused = patch_key(any_server, key_id, {"rpm": 10})
    assert refused.status == 409 and "revoked" in refused.json()["detail"]
    again = request("DELETE", f"{any_server.url}/v2/admin/keys/{key_id}")
    assert again.status == 200  # revoking twice changes nothing


def test_another_projects_key_ids_are_not_found(any_server: ServerProcess) -> None:
    other = subprocess.run([*taskgate_command(), "keys", "create", "--project", f"other-{uuid.uuid4().hex[:8]}",
                            "--admin", "--data-dir", str(any_server.data_dir)],
                           env=any_server.env, capture_output=True, text=True, check=True)
    other_key = other.stdout.strip()
    foreign_id, _ = make_key(any_server, admin_key=other_key)  # a key of the other project
    for method, path, body in (("GET", "", None), ("PATCH", "", {"rpm": 5}), ("DELETE", "", None),
                               ("GET", "/usage", None)):
        reply = request(method, f"{any_server.url}/v2/admin/keys/{foreign_id}{path}", body)
        assert reply.status == 404, (method, path, reply.body)
    assert foreign_id not in [k["id"] for k in get(f"{any_server.url}/v2/admin/keys").json()["data"]]
    for odd in ("x" * 65, "%00", "..%2F..%2Fetc", "'%20OR%201=1--"):
        assert get(f"{any_server.url}/v2/admin/keys/{odd}").status == 404


def test_only_admin_keys_may_call_the_admin_api(any_server: ServerProcess) -> None:
    limited_id, limited = make_key(any_server, rpm=1000, budget_usd=5)
    _, plain = make_key(any_server)
    for key in (limited, plain):
        for method, path, body in (("GET", "/v2/admin/keys", None), ("POST", "/v2/admin/keys", {}),
                                   ("PATCH", f"/v2/admin/keys/{limited_id}", {"rpm": None, "budget_usd": None}),
                                   ("DELETE", f"/v2/admin/keys/{limited_id}", None),
                                   ("GET", f"/v2/admin/keys/{limited_id}/usage", None),
                                   ("GET", "/v2/admin/project", None), ("PATCH", "/v2/admin/project", {"rpm": None})):
            reply = request(method, any_server.url + path, body, key=key)
            assert reply.status == 403, (method, path, reply.body)
            assert reply.json()["type"] == "ForbiddenError"
    assert get(f"{any_server.url}/v2/admin/keys/{limited_id}").json()["limits"]["rpm"] == 1000
    assert request("GET", f"{any_server.url}/v2/admin/keys", key=None).status == 401
    assert request("GET", f"{any_server.url}/v2/admin/keys", key="tg_nope").status == 401


def test_an_admin_made_through_the_api_manages_keys_but_not_project_limits(any_server: ServerProcess) -> None:
    _, admin = make_key(any_server, admin=True)
    key_id, _ = make_key(any_server, admin_key=admin, rpm=3)
    assert patch_key(any_server, key_id, {"rpm": 4}, admin_key=admin).json()["limits"]["rpm"] == 4
    assert get(f"{any_server.url}/v2/admin/project", key=admin).status == 200
    refused = request("PATCH", f"{any_server.url}/v2/admin/project", {"rpm": 1}, key=admin)
    assert refused.status == 403 and "operator" in refused.json()["detail"]
    made_admin = patch_key(any_server, key_id, {"admin": True}, admin_key=admin)
    assert made_admin.status == 422  # a limited key cannot become an admin while it has limits


def test_the_secret_is_shown_once(any_server: ServerProcess) -> None:
    made = create(any_server, {"name": "once"})
    secret = made.json()["key"]
    assert secret.startswith("tg_") and call(any_server, secret).status == 200
    listed = get(f"{any_server.url}/v2/admin/keys").body
    shown = get(f"{any_server.url}/v2/admin/keys/{made.json()['id']}").body
    assert secret.encode() not in listed and secret.encode() not in shown


# ------------------------------------------------------------------ the CLI

def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*taskgate_command(), *args, "--data-dir", str(server.data_dir)], env=server.env,
                          capture_output=True, text=True, timeout=60)


def test_the_cli_creates_updates_lists_and_revokes_keys(any_server: ServerProcess) -> None:
    project = f"cli-{uuid.uuid4().hex[:8]}"
    made = cli(any_server, "keys", "create", "--project", project, "--rpm", "2", "--tpm", "100000",
               "--budget-usd", "3.5", "--period", "day", "--models", "openai/*,anthropic/claude-*")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    key_id = made.stderr.split("key id: ")[1].split()[0]
    assert [call(any_server, secret).status for _ in range(3)] == [200, 200, 429]
    import json

    listed = json.loads(cli(any_server, "keys", "list", "--project", project).stdout)
    assert listed[0]["limits"] == {"rpm": 2, "tpm": 100000, "budget_usd": 3.5, "period": "day",
                                   "models": ["openai/*", "anthropic/claude-*"]}
    changed = cli(any_server, "keys", "update", key_id, "--project", project, "--rpm", "50", "--clear", "tpm,models")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["limits"] == {"rpm": 50, "tpm": None, "budget_usd": 3.5, "period": "day",
                                                    "models": None}
    spent = json.loads(cli(any_server, "keys", "usage", key_id, "--project", project).stdout)
    assert spent["day"]["requests"] >= 2 and spent["budget"]["budget_usd"] == 3.5
    revoked = cli(any_server, "keys", "revoke", key_id, "--project", project)
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"]
    assert cli(any_server, "keys", "update", key_id, "--project", project, "--rpm", "5").returncode == 2
    limits = cli(any_server, "projects", "limits", project, "--budget-usd", "100", "--period", "month")
    assert json.loads(limits.stdout)["limits"]["budget_usd"] == 100
    assert json.loads(cli(any_server, "projects", "usage", project).stdout)["month"]["requests"] >= 2


@pytest.mark.parametrize("args", [
    ("--rpm", "-1"), ("--rpm", "0"), ("--rpm", "99999999999"), ("--tpm", "-5"), ("--budget-usd", "-1"),
    ("--budget-usd", "nan"), ("--budget-usd", "inf"), ("--period", "week"), ("--models", "openai/[x]"),
    ("--models", "bogus/*"), ("--models", ","), ("--admin", "--rpm", "5"), ("--rpm", "abc"),
])
def test_the_cli_refuses_bad_limits(any_server: ServerProcess, args: tuple[str, ...]) -> None:
    made = cli(any_server, "keys", "create", "--project", f"bad-{uuid.uuid4().hex[:6]}", *args)
    assert made.returncode == 2, (args, made.stdout, made.stderr)
    assert made.stdout == "" and "Traceback" not in made.stderr


def test_the_cli_names_unknown_keys_and_projects(any_server: ServerProcess) -> None:
    missing = cli(any_server, "keys", "update", "no-such-id", "--project", "default", "--rpm", "5")
    assert missing.returncode == 1 and "no API key" in missing.stderr
    nowhere = cli(any_server, "keys", "list", "--project", f"none-{uuid.uuid4().hex[:6]}")
    assert nowhere.returncode == 1 and "no project" in nowhere.stderr
    empty = cli(any_server, "keys", "update", "x", "--project", "default")
    assert empty.returncode == 2 and "nothing to change" in empty.stderr
    both = cli(any_server, "keys", "update", "x", "--project", "default", "--rpm", "5", "--clear", "rpm")
    assert both.returncode == 2 and "contradict" in both.stderr

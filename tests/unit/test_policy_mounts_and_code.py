"""What a tenant's spec may make the vLLM pods run and mount (issue 13 item 5): --trust-remote-code only where a
SizingPolicy allows it (allowed.trustRemoteCode, refused by default, also where no policy applies), the Secret of
spec.serving.hfTokenSecretRef and the claim of spec.serving.modelCacheClaim only when they match the policies' name
patterns. Judged in policy.evaluate, so the admission webhook, the reconciler and `rightsizer plan --policy` agree."""

from __future__ import annotations

import fnmatch
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from rightsizer.adapters.hub import HubClient
from rightsizer.adapters.settings import OperatorSettings
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy
from rightsizer.controller.reconcile import Observed, Reconciler
from rightsizer.errors import SizingError
from rightsizer.policy import Decision, ViolationKind, combine, evaluate, explain_dict, explain_lines
from rightsizer.policy.name_patterns import name_matches
from tests.unit import test_reconcile as rec
from tests.unit import test_webhooks as hooks
from tests.unit.fake_kube import FakeKube
from tests.unit.helpers import REPO

JSON = dict[str, Any]
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def policy(name: str, **allowed: Any) -> SizingPolicy:
    return SizingPolicy.model_validate({"metadata": {"name": name}, "spec": {"allowed": allowed}})


def spec(
    *extra: str, secret: str | None = None, claim: str | None = None, version: str = "0.19.0"
) -> LLMDeploymentSpec:
    serving: JSON = {"engine": {"version": version, "extraArgs": list(extra)}}
    if secret is not None:
        serving["hfTokenSecretRef"] = {"name": secret}
    if claim is not None:
        serving["modelCacheClaim"] = claim
    return LLMDeploymentSpec.model_validate({"model": {"name": MODEL}, "serving": serving})


def decide(s: LLMDeploymentSpec, *policies: SizingPolicy) -> Decision:
    return evaluate(s, None, combine("team-a", policies))


def kinds(decision: Decision) -> list[ViolationKind]:
    return [v.kind for v in decision.violations]


# --- name patterns ------------------------------------------------------------------------------------------------


def test_patterns_match_as_shell_globs_of_stars_do() -> None:
    """Every pattern of up to 5 characters over a, b, * against every name of up to 6 characters over a, b: the
    greedy matcher agrees with fnmatch's (whose `*` is the same wildcard)."""
    names = ["".join(p) for n in range(7) for p in itertools.product("ab", repeat=n)]
    patterns = ["".join(p) for n in range(1, 6) for p in itertools.product("ab*", repeat=n)]
    for pattern in patterns:
        for name in names:
            assert name_matches(pattern, name) == fnmatch.fnmatchcase(name, pattern), (pattern, name)


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("hf-token", "hf-token", True),
        ("hf-token", "hf-token-2", False),  # no implicit prefix match: a pattern is the whole name
        ("hf-*", "hf-token", True),
        ("hf-*", "my-hf-token", False),  # nor an implicit suffix match
        ("*-cache", "llama-cache", True),
        ("team-*-token", "team-a-token", True),
        ("team-*-token", "team-token", False),  # the pieces may not overlap
        ("a.b", "axb", False),  # `.` is a character, not "any character"
    ],
)
def test_pattern_examples(pattern: str, name: str, matches: bool) -> None:
    assert name_matches(pattern, name) is matches


def test_matching_is_bounded_whatever_the_tenant_writes() -> None:
    """The worst pattern the CRD admits against the worst name: far below a millisecond each; a name longer than
    any Kubernetes name matches nothing (it is not even read)."""
    pattern = "*" + "a*" * 126  # 253 characters
    name = "a" * 125 + "b" * 128
    start = time.perf_counter()
    for _ in range(100):
        name_matches(pattern, name)
    assert (time.perf_counter() - start) / 100 < 1e-3
    assert not name_matches("*", "a" * 254)
    assert name_matches("*", "a" * 253)


@pytest.mark.parametrize(
    ("patterns", "problem"),
    [
        (["hf_*"], "should match pattern"),  # not a character of a Kubernetes name
        (["HF-*"], "should match pattern"),
        (["hf-.+"], "should match pattern"),  # regular expressions are not patterns
        ([""], "at least 1 character"),
        (["a" * 254], "at most 253 characters"),
        ([f"p{i}" for i in range(33)], "at most 32 items"),
    ],
)
def test_patterns_are_validated(patterns: list[str], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        policy("p", hfTokenSecrets=patterns)
    with pytest.raises(ValidationError, match=problem):
        policy("p", modelCacheClaims=patterns)


def test_the_crd_carries_the_same_bounds() -> None:
    crd = yaml.safe_load((REPO / "crds" / "rightsizer.dev_sizingpolicies.yaml").read_text())
    allowed = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["allowed"]
    for name in ("hfTokenSecrets", "modelCacheClaims"):
        field = allowed["properties"][name]
        assert field["maxItems"] == 32
        assert field["items"] == {"type": "string", "minLength": 1, "maxLength": 253, "pattern": "^[a-z0-9.*-]+$"}
    assert allowed["properties"]["trustRemoteCode"]["type"] == "boolean"


# --- --trust-remote-code ------------------------------------------------------------------------------------------


def test_trust_remote_code_is_refused_where_no_policy_applies() -> None:
    decision = decide(spec("--enforce-eager", "--trust-remote-code"))
    assert kinds(decision) == [ViolationKind.TRUST_REMOTE_CODE]
    message = decision.message()
    assert "\n" not in message
    assert message.startswith("spec.serving.engine.extraArgs[1] is --trust-remote-code, which makes vLLM run Python")
    assert "no SizingPolicy selects namespace team-a" in message
    assert "remove it, or ask the platform team for allowed.trustRemoteCode: true" in message
    assert decision.violations[0].field == "spec.serving.engine.extraArgs[1]"


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        (["--trust-remote-code"], True),
        (["--trust_remote_code"], True),  # FlexibleArgumentParser turns _ into -
        (["--trust-remote"], True),  # argparse's abbreviation of a long option
        (["--no-trust-remote-code"], False),
        (["--trust-remote-code", "--no-trust-remote-code"], False),  # the last switch wins, as in argparse
        (["--no-trust-remote-code", "--trust-remote-code"], True),
        (["--enforce-eager"], False),
    ],
)
def test_every_spelling_vllm_reads_is_judged(extra: list[str], refused: bool) -> None:
    decision = decide(spec(*extra), policy("quota-only"))
    assert kinds(decision) == ([ViolationKind.TRUST_REMOTE_CODE] if refused else [])
    if refused and extra[-1] == "--trust-remote":
        assert "--trust-remote (vLLM reads it as --trust-remote-code)" in decision.message()


@pytest.mark.parametrize("version", ["0.10.2", "0.11.0", "0.19.0"])
def test_every_release_table_reads_the_flag(version: str) -> None:
    assert kinds(decide(spec("--trust-remote-code", version=version))) == [ViolationKind.TRUST_REMOTE_CODE]


@pytest.mark.parametrize(
    ("settings", "allowed", "says"),
    [
        ({}, False, "SizingPolicy a does not allow it"),
        ({"a": True}, True, ""),
        ({"a": True, "b": None}, True, ""),  # a policy that says nothing does not forbid
        ({"a": True, "b": False}, False, "SizingPolicy b forbids it"),  # forbidding wins
        ({"a": False, "b": False}, False, "SizingPolicies a and b forbid it"),
    ],
)
def test_the_most_restrictive_setting_wins(settings: dict[str, bool | None], allowed: bool, says: str) -> None:
    policies = [policy(n, trustRemoteCode=v) for n, v in settings.items()] or [policy("a")]
    decision = decide(spec("--trust-remote-code"), *policies)
    assert decision.allowed is allowed
    assert says in decision.message()


def test_unreadable_extra_args_are_left_to_sizing() -> None:
    """Sizing refuses them naming the argument (tests/unit/test_extra_args.py); the policy adds no second verdict."""
    assert decide(spec("--trust-remote-code", "--no-such-flag")).allowed


# --- Secrets and claims ---------------------------------------------------------------------------------------------


def test_a_secret_outside_the_patterns_is_refused() -> None:
    tokens = policy("tokens", hfTokenSecrets=["hf-*", "shared-token"])
    assert decide(spec(secret="hf-team-a"), tokens).allowed
    assert decide(spec(secret="shared-token"), tokens).allowed
    decision = decide(spec(secret="db-password"), tokens)
    assert kinds(decision) == [ViolationKind.HF_TOKEN_SECRET]
    assert decision.message() == (
        "spec.serving.hfTokenSecretRef.name names Secret db-password; SizingPolicy tokens allows only hf-*, "
        "shared-token: name one that matches (allowed.hfTokenSecrets)"
    )
    assert decide(spec(secret="db-password"), policy("no-patterns")).allowed  # no list: any Secret


def test_a_claim_outside_the_patterns_is_refused() -> None:
    caches = policy("caches", modelCacheClaims=["model-cache-*"])
    assert decide(spec(claim="model-cache-llama"), caches).allowed
    decision = decide(spec(claim="postgres-data"), caches)
    assert kinds(decision) == [ViolationKind.MODEL_CACHE_CLAIM]
    assert decision.violations[0].field == "spec.serving.modelCacheClaim"
    assert "names PersistentVolumeClaim postgres-data" in decision.message()


def test_every_policy_listing_patterns_must_be_matched() -> None:
    a, b = policy("a", hfTokenSecrets=["hf-*"]), policy("b", hfTokenSecrets=["*-token"])
    assert decide(spec(secret="hf-token"), a, b).allowed
    decision = decide(spec(secret="hf-key"), a, b)
    assert [v.policies for v in decision.violations] == [("b",)]
    same = combine("team-a", [a, policy("c", hfTokenSecrets=["hf-*"])])
    assert [(s.value, s.policies) for s in same.hf_token_secrets] == [(("hf-*",), ("a", "c"))]


def test_a_huge_name_is_refused_quickly_and_quoted_short() -> None:
    huge = "hf-" + "x" * 1_000_000
    start = time.perf_counter()
    decision = decide(spec(secret=huge), policy("tokens", hfTokenSecrets=["hf-*"]))
    assert time.perf_counter() - start < 0.05
    assert kinds(decision) == [ViolationKind.HF_TOKEN_SECRET]
    assert len(decision.message()) < 300 and "(1,000,003 characters)" in decision.message()


# --- rightsizer policy explain ------------------------------------------------------------------------------------


def test_explain_shows_each_setting_and_the_default_refusal() -> None:
    lines = explain_lines(combine("team-a", [policy("quota-only")]))
    row = next(line for line in lines if "allowed.trustRemoteCode" in line)
    assert "false (no policy sets it: --trust-remote-code is refused)" in row
    assert "--trust-remote-code" in explain_lines(combine("team-a", []))[-1]
    effective = combine(
        "team-a",
        [
            policy("research", trustRemoteCode=True, modelCacheClaims=["cache-*"]),
            policy("tokens", hfTokenSecrets=["hf-*", "shared-token"]),
            policy("more-tokens", hfTokenSecrets=["*-token"]),
        ],
    )
    text = "\n".join(explain_lines(effective))
    assert "allowed.trustRemoteCode" in text and "true  from research" in text
    assert "hf-*, shared-token  from tokens" in text and "*-token  from more-tokens" in text
    assert "allowed.hfTokenSecrets[1]" in text and "allowed.hfTokenSecrets[2]" in text
    data = explain_dict(effective)["effective"]
    assert data["allowed.trustRemoteCode"] == {"value": True, "from": ["research"]}
    assert data["allowed.modelCacheClaims"] == {"value": ["cache-*"], "from": ["research"]}
    assert data["allowed.hfTokenSecrets[1]"]["from"] == ["more-tokens"]


# --- through the admission webhook and the reconciler -------------------------------------------------------------

RESEARCH = {"metadata": {"name": "research"}, "spec": {"allowed": {"trustRemoteCode": True}}}
TOKENS = {"metadata": {"name": "tokens"}, "spec": {"allowed": {"hfTokenSecrets": ["hf-*"]}}}


def with_trust(s: JSON) -> None:
    s.setdefault("serving", {}).setdefault("engine", {})["extraArgs"] = ["--trust-remote-code"]


def with_secret(s: JSON) -> None:
    s.setdefault("serving", {})["hfTokenSecretRef"] = {"name": "db-password"}


def test_the_webhook_refuses_trust_remote_code_without_a_policy_and_admits_it_with_one() -> None:
    refused = hooks.Validation(hooks.llmd(with_trust), 403, "spec.serving.engine.extraArgs[0] is --trust-remote-code")
    verdict, says = hooks.validate(refused, FakeKube())
    assert (verdict, refused.says in says) == (403, True)
    admitted = hooks.Validation(hooks.llmd(with_trust), None, "", policies=(RESEARCH,))
    assert hooks.validate(admitted, FakeKube())[0] is None


def test_the_reconciler_builds_no_pod_from_a_refused_spec() -> None:
    case = rec.Case(rec.llmd(rec.SMALL, with_trust), [], [], {})
    kube, reconciler, observed = rec.world(case)
    reconciler.reconcile(case.body, observed)
    assert [(w.verb, w.kind) for w in kube.writes] == [("status", "LLMDeployment")]
    conditions = rec.conditions_of(kube.writes[-1].body)
    assert conditions["PolicyCompliant"] == ("False", "TrustRemoteCodeNotAllowed")

    case = rec.Case(rec.llmd(rec.SMALL, with_trust), [], [], {}, policies=(RESEARCH,))
    kube, reconciler, observed = rec.world(case)
    reconciler.reconcile(case.body, observed)
    deployment = next(w.body for w in kube.writes if w.kind == "Deployment")
    assert "--trust-remote-code" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_the_reconciler_mounts_no_secret_outside_the_patterns() -> None:
    case = rec.Case(rec.llmd(rec.SMALL, with_secret), [], [], {}, policies=(TOKENS,))
    kube, reconciler, observed = rec.world(case)
    reconciler.reconcile(case.body, observed)
    assert [(w.verb, w.kind) for w in kube.writes] == [("status", "LLMDeployment")]
    assert rec.conditions_of(kube.writes[-1].body)["PolicyCompliant"] == ("False", "HfTokenSecretNotAllowed")


def test_the_example_allows_remote_code_in_research_namespaces_only() -> None:
    """examples/policies/research.yaml beside the other examples (which also refuse this bare spec's image and
    missing SLOs: only the kinds this file is about are compared)."""
    from rightsizer.cli.policy import effective_policy

    mine = {ViolationKind.TRUST_REMOTE_CODE, ViolationKind.HF_TOKEN_SECRET, ViolationKind.MODEL_CACHE_CLAIM}
    policies = [REPO / "examples" / "policies"]
    research = effective_policy("ml-research", {"gpu-tier": "research"}, policies)
    standard = effective_policy("ml-chat", {"gpu-tier": "standard"}, policies)

    def found(s: LLMDeploymentSpec, effective: Any) -> set[ViolationKind]:
        return set(kinds(evaluate(s, None, effective))) & mine

    assert found(spec("--trust-remote-code", secret="hf-token-team"), research) == set()
    assert found(spec("--trust-remote-code"), standard) == {ViolationKind.TRUST_REMOTE_CODE}
    assert found(spec(secret="db-password", claim="scratch"), research) == {
        ViolationKind.HF_TOKEN_SECRET,
        ViolationKind.MODEL_CACHE_CLAIM,
    }
    assert found(spec(secret="db-password", claim="scratch"), standard) == set()


def test_the_reconciler_does_not_read_a_token_secret_the_policies_do_not_allow(tmp_path: Path) -> None:
    """The Hub needs the token (the model is not in the catalog); the Secret is outside allowed.hfTokenSecrets, so
    it is not read: before, the operator read it and sent it to the Hub as the tenant's token."""
    kube = FakeKube(secrets={("team-a", "db-password"): {"token": "s3cret"}})
    hub = HubClient(endpoint="http://127.0.0.1:9", cache_dir=tmp_path, timeout_seconds=2)
    reconciler = Reconciler(kube, OperatorSettings(), hub)
    gated = LLMDeploymentSpec.model_validate(
        {"model": {"name": "acme/gated"}, "serving": {"hfTokenSecretRef": {"name": "db-password", "key": "token"}}}
    )
    observed = Observed(policies=[SizingPolicy.model_validate(TOKENS)])
    with pytest.raises(SizingError) as refused:
        reconciler.assess("team-a", "chat", gated, observed)
    assert refused.value.field == "spec.serving.hfTokenSecretRef.name"
    assert "Secret db-password is not read: SizingPolicy tokens allows only hf-*" in refused.value.one_line()
    assert kube.reads == []

"""The vLLM simulator: its scheduler against vLLM V1's rules, its latencies against the performance model, its API."""

from __future__ import annotations

import asyncio
import heapq
import random
import statistics
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from e2e.vllm_sim.engine import Engine, Request
from e2e.vllm_sim.metrics import build_1_2_5_buckets
from e2e.vllm_sim.server import Served, SimulatedVllm, build_app
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.perf import Replica, Traffic, predict
from rightsizer.perf.in_force import replica_of
from rightsizer.sizing import SizingRequest, plan
from rightsizer.sizing.pools import default_pools
from tests.unit.helpers import facts_of

MODEL = "meta-llama/Llama-3.1-70B-Instruct"


def planned(**serving: Any) -> tuple[Replica, int]:
    spec = LLMDeploymentSpec.model_validate(
        {
            "model": {"name": MODEL, "quantization": "fp8"},
            "serving": {"maxModelLen": 32768, **serving},
            "workload": {"inputTokens": 1155, "outputTokens": 211},
            "slo": {"ttftP95Ms": 1000, "itlP95Ms": 50},
            "gpu": {"products": ["H200"]},
        }
    )
    facts = facts_of(MODEL)
    chosen = plan(SizingRequest(spec, facts, default_pools()), MODEL)
    return replica_of(spec, facts, chosen), chosen.kv_cache_blocks


@pytest.fixture(scope="module")
def replica() -> tuple[Replica, int]:
    return planned()


def drain(engine: Engine, now: float = 0.0, limit: int = 100_000) -> tuple[float, list[Any]]:
    """Run the engine until idle; (end time, every token event)."""
    events: list[Any] = []
    for _ in range(limit):
        step = engine.schedule(now)
        if step is None:
            return now, events
        now += step.seconds
        events += engine.complete(step, now)
    raise AssertionError("the engine did not drain")


def test_one_request_prefills_then_decodes_one_token_per_step(replica: tuple[Replica, int]) -> None:
    r, blocks = replica
    engine = Engine(r, blocks)
    engine.add(Request(prompt_tokens=1000, max_tokens=5, arrival=0.0, queued=0.0))
    step = engine.schedule(0.0)
    assert step is not None and step.total_tokens == 1000
    assert step.seconds == pytest.approx(r.step_seconds(0, 0.0, 1000.0, 0.0, 1.0))
    events = engine.complete(step, step.seconds)
    assert [(e.first, e.finished) for e in events] == [(True, False)]
    assert events[0].latency == pytest.approx(step.seconds)
    decode = engine.schedule(step.seconds)
    assert decode is not None and decode.total_tokens == 1
    assert decode.seconds == pytest.approx(r.step_seconds(1, 1000.0))
    _, rest = drain(engine, step.seconds)
    assert [e.first for e in rest] == [False] * 4 and rest[-1].finished
    assert engine.idle


def test_a_long_prompt_is_chunked_by_the_token_budget(replica: tuple[Replica, int]) -> None:
    r, blocks = replica
    engine = Engine(r, blocks)
    budget = r.max_num_batched_tokens
    engine.add(Request(prompt_tokens=2 * budget + 100, max_tokens=1, arrival=0.0, queued=0.0))
    sizes = []
    now = 0.0
    while (step := engine.schedule(now)) is not None:
        sizes.append(step.total_tokens)
        now += step.seconds
        engine.complete(step, now)
    assert sizes == [budget, budget, 100]


def test_decodes_go_first_and_max_num_seqs_caps_the_batch(replica: tuple[Replica, int]) -> None:
    r, blocks = replica
    engine = Engine(r, blocks)
    for _ in range(r.max_num_seqs + 3):
        engine.add(Request(prompt_tokens=100, max_tokens=50, arrival=0.0, queued=0.0))
    step = engine.schedule(0.0)
    assert step is not None
    assert len(step.tokens) == r.max_num_seqs and len(engine.waiting) == 3
    engine.complete(step, step.seconds)
    nxt = engine.schedule(step.seconds)
    assert nxt is not None and nxt.total_tokens == r.max_num_seqs  # one decode token each, nobody admitted


def test_a_full_kv_cache_blocks_admission_and_preempts_the_newest(replica: tuple[Replica, int]) -> None:
    r, _ = replica
    block = r.kv_layout.block_size if r.kv_layout else 16
    engine = Engine(r, kv_blocks=2 * (64 // block))  # room for two 64-token requests
    for _ in range(3):
        engine.add(Request(prompt_tokens=64, max_tokens=20, arrival=0.0, queued=0.0))
    step = engine.schedule(0.0)
    assert step is not None and len(step.tokens) == 2 and len(engine.waiting) == 1  # the third prompt does not fit
    engine.complete(step, step.seconds)
    nxt = engine.schedule(step.seconds)  # both need a block for their 65th token: the newer one is preempted
    assert nxt is not None and len(nxt.tokens) == 1
    assert engine.preemptions == 1 and engine.waiting[0].computed == 0 and engine.waiting[0].preemptions == 1
    _, events = drain(engine, step.seconds + nxt.seconds)
    assert sum(e.finished for e in events) == 3  # everyone finishes, the preempted one after its recompute


def poisson_run(r: Replica, blocks: int, rate: float, seconds: float, prompt: int, output: int) -> dict[str, float]:
    """Open-loop Poisson arrivals in virtual time; TTFT includes the per-request overhead, as the server adds it."""
    rng = random.Random(7)
    engine, overhead = Engine(r, blocks), r.efficiency.request_overhead_s
    arrivals, t = [], 0.0
    while t < seconds:
        t += rng.expovariate(rate)
        arrivals.append(t)
    heapq.heapify(arrivals)
    now = 0.0
    ttft: list[float] = []
    itl: list[float] = []
    while arrivals or not engine.idle:
        while arrivals and arrivals[0] <= now:
            at = heapq.heappop(arrivals)
            engine.add(Request(prompt, output, arrival=at, queued=at + overhead))
        step = engine.schedule(now)
        if step is None:
            now = arrivals[0] if arrivals else now
            continue
        now += step.seconds
        for e in engine.complete(step, now):
            (ttft if e.first else itl).append(e.latency + (overhead if e.first else 0.0))
    q = statistics.quantiles
    return {"ttft_p50": q(ttft, n=20)[9], "itl_mean": statistics.fmean(itl), "itl_p95": q(itl, n=20)[18]}


@pytest.mark.parametrize("share", [0.3, 0.7])
def test_latencies_under_load_follow_the_performance_model(replica: tuple[Replica, int], share: float) -> None:
    """The simulator schedules request by request; the performance model predicts the steady state in closed form.
    At 30 % and 70 % of a replica's capacity within the SLO they agree on mean ITL and median TTFT within 10 %."""
    from rightsizer.perf import Slo, max_request_rate

    r, blocks = replica
    rate = share * max_request_rate(r, 1155, 211, Slo(1.0, 0.05))
    measured = poisson_run(r, blocks, rate, seconds=600, prompt=1155, output=211)
    predicted = predict(r, Traffic(1155, 211, request_rate=rate))
    assert measured["itl_mean"] == pytest.approx(predicted.itl.mean, rel=0.10)
    assert measured["ttft_p50"] == pytest.approx(predicted.ttft.p50, rel=0.10)


def test_length_buckets_are_vllms() -> None:
    assert build_1_2_5_buckets(100) == [1, 2, 5, 10, 20, 50, 100]
    assert build_1_2_5_buckets(32768)[-1] == 20000


# --- the HTTP API --------------------------------------------------------------------------------------------------


async def _api(replica: tuple[Replica, int]) -> None:
    r, blocks = replica
    sim = SimulatedVllm(r, blocks, Served(MODEL, 32768, request_overhead_s=0.0, time_scale=50.0))
    async with TestClient(TestServer(build_app(sim))) as client:
        assert (await client.get("/health")).status == 200
        ok = await client.post("/v1/completions", json={"model": MODEL, "prompt": [7] * 300, "max_tokens": 12})
        body = await ok.json()
        assert ok.status == 200
        assert body["usage"] == {"prompt_tokens": 300, "completion_tokens": 12, "total_tokens": 312}
        chat = await client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "one two three"}], "max_tokens": 3}
        )
        assert (await chat.json())["usage"]["prompt_tokens"] == 3 + 4
        stream = await client.post("/v1/completions", json={"prompt": "hi there", "max_tokens": 4, "stream": True})
        lines = [line for line in (await stream.text()).splitlines() if line.startswith("data: ")]
        assert len(lines) == 5 and lines[-1] == "data: [DONE]"
        wrong = await client.post("/v1/completions", json={"model": "other", "prompt": "x"})
        assert wrong.status == 404 and "does not exist" in (await wrong.json())["error"]["message"]
        long = await client.post("/v1/completions", json={"prompt": [1] * 32000, "max_tokens": 1000})
        assert long.status == 400 and "maximum context length is 32768" in (await long.json())["error"]["message"]
        metrics = await (await client.get("/metrics")).text()
        success = f'vllm:request_success_total{{engine="0",finished_reason="length",model_name="{MODEL}"}} 3.0'
        assert success in metrics
        assert "vllm:time_to_first_token_seconds_count" in metrics and "_created" not in metrics


def test_the_api_answers_like_vllm(replica: tuple[Replica, int]) -> None:
    asyncio.run(_api(replica))


def test_model_error_runs_the_simulated_replica_at_another_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    from e2e.vllm_sim.__main__ import build, parse_args

    llmd = "examples/llama-3.1-70b-fp8-h200.yaml"
    believed, _ = build(parse_args(["--llmd", llmd]))
    slower, _ = build(parse_args(["--llmd", llmd, "--model-error", "1.4,0.7"]))
    assert believed.engine.replica.scaled(1.0, 1.0) == believed.engine.replica
    one = Request(prompt_tokens=3000, max_tokens=2, arrival=0.0, queued=0.0)
    times = []
    for sim in (believed, slower):
        sim.engine.add(Request(prompt_tokens=one.prompt_tokens, max_tokens=2, arrival=0.0, queued=0.0))
        step = sim.engine.schedule(0.0)
        assert step is not None
        times.append(step.seconds)
    r = believed.engine.replica
    plain = r.step_seconds(0, 0.0)
    assert times[1] == pytest.approx(0.7 * plain + 1.4 * (times[0] - plain))
    monkeypatch.setenv("VLLM_SIM_MODEL_ERROR", "1.3")
    assert parse_args(["--llmd", llmd]).model_error == (1.3, 1.3)
    with pytest.raises(SystemExit):
        parse_args(["--llmd", llmd, "--model-error", "0,1"])

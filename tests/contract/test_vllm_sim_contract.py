"""The vLLM simulator (e2e/vllm_sim) serves only series the pinned vLLM release serves, with the same kinds and
labels, and every series the autoscaler reads: so the end-to-end tests exercise the names a real vLLM exposes."""

from __future__ import annotations

import pytest

from e2e.vllm_sim.metrics import LABELS, VllmMetrics
from rightsizer.facts import vllm_metrics
from rightsizer.facts.vllm_metrics import Signal
from tests.contract.vllm_release import ReleaseContract


@pytest.fixture(scope="module")
def simulated(pinned: ReleaseContract) -> VllmMetrics:
    return VllmMetrics("m", 32768, pinned.version)


def test_every_simulated_series_is_one_the_release_exposes(pinned: ReleaseContract, simulated: VllmMetrics) -> None:
    exposed = pinned.exposed_series()
    for family in simulated.registry.collect():
        registered = pinned.metric(family.name)
        assert registered is not None, f"{family.name} is not in vLLM {pinned.version}"
        assert registered.kind == family.type, f"{family.name}: {family.type}, vLLM registers a {registered.kind}"
        assert not registered.hidden and registered.always_registered, family.name
        for sample in family.samples:
            assert sample.name in exposed, f"{sample.name} is not served by vLLM {pinned.version}"
            assert set(LABELS) <= set(sample.labels), sample.name


@pytest.mark.parametrize("signal", list(Signal))
def test_the_simulator_serves_every_signal_the_autoscaler_reads(
    pinned: ReleaseContract, simulated: VllmMetrics, signal: Signal
) -> None:
    served = {s.name for family in simulated.registry.collect() for s in family.samples}
    for name in vllm_metrics.names_for(signal, pinned.version)[:1]:
        assert set(name.series()) <= served, f"the simulator lacks {name.name}"

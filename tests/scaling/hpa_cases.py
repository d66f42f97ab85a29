"""The HPA's own test cases, ported as data for tests/scaling/test_hpa_conformance.py.

Read from kubernetes/kubernetes at tag v1.33.13: the Go module k8s.io/kubernetes v1.33.13 (go.sum
h1:bmH31xUdSzeA5vk0wZAK9MZp11mdLuzUSeKk0qN3hPQ=), files pkg/controller/podautoscaler/
horizontal_test.go (sha256 2d269b51...) and replica_calculator_test.go (sha256 b6dc98d4...). Every row names
the Go test (and sub-case) it came from. Metric levels and targets are the Go tests' milli-values; a KEDA
AverageValue target of `target_milli / 1000` messages per replica reads a backlog of `level_milli / 1000`.
Ages are seconds before the decision. Go's generateEventsUniformDistribution is `uniform` below.
Tests that cannot apply are in NOT_APPLICABLE with the reason; the conformance test checks that every
Test function of both files is either ported or listed there.
"""

from __future__ import annotations

from dataclasses import dataclass

from qc_operator.scaling import HPA_SCALE_DOWN, HPA_SCALE_UP, RatePolicy, ScalingRules

K8S_VERSION = "v1.33.13"
HORIZONTAL = "horizontal_test.go"
CALCULATOR = "replica_calculator_test.go"
TOLERANCE = 0.1  # defaultTestingTolerance
FAR_PAST_SECONDS = 100_000.0  # the Go tests' non-nil empty history: a controller already running

Events = tuple[tuple[float, int], ...]  # (age seconds, replica change: + added, - removed)


def uniform(changes: list[int], period_seconds: int) -> Events:
    """generateEventsUniformDistribution: the events spread over the period, each in its segment's middle;
    Go truncates the age to whole seconds (time.Duration of a float, then times time.Second)."""
    segment = period_seconds / len(changes)
    return tuple(
        (float(int(period_seconds - segment * (i + 1) + segment / 2)), change)
        for i, change in enumerate(changes)
    )


def rules(pods: int, pods_period: int, percent: int, percent_period: int, window: int) -> ScalingRules:
    """generateScalingRules: a Pods and/or a Percent policy (0 leaves it out), selectPolicy Max."""
    policies = []
    if pods:
        policies.append(RatePolicy("Pods", pods, pods_period))
    if percent:
        policies.append(RatePolicy("Percent", percent, percent_period))
    return ScalingRules(window, tuple(policies))


def down(events: Events) -> Events:
    return tuple((age, -change) for age, change in events)


@dataclass(frozen=True)
class MetricCase:
    """A per-pod target: GetExternalPerPodMetricReplicas / GetObjectPerPodMetricReplicas."""

    go_test: str
    go_file: str
    current: int
    level_milli: int
    target_milli: int
    expected: int
    scale_up_tolerance: float = TOLERANCE
    scale_down_tolerance: float = TOLERANCE


METRIC_CASES = (
    MetricCase("TestReplicaCalcScaleUpCMPerPodObject", CALCULATOR, 3, 20000, 5000, 4),
    MetricCase("TestReplicaCalcScaleUpPerPodCMExternal", CALCULATOR, 3, 8600, 2150, 4),
    MetricCase("TestReplicaCalcScaleDownPerPodCMObject", CALCULATOR, 5, 6000, 2000, 3),
    MetricCase("TestReplicaCalcScaleDownPerPodCMExternal", CALCULATOR, 5, 8600, 2867, 3),
    MetricCase("TestReplicaCalcTolerancePerPodCMObject", CALCULATOR, 4, 20166, 5000, 4),
    MetricCase("TestReplicaCalcTolerancePerPodCMExternal", CALCULATOR, 3, 8600, 2900, 3),
    MetricCase("TestReplicaCalcConfigurableTolerancePerPodCMObject", CALCULATOR, 4, 20208, 5000, 5, 0.01),
    MetricCase("TestReplicaCalcConfigurableTolerancePerPodCMExternal", CALCULATOR, 3, 8600, 2800, 4, 0.01),
)


@dataclass(frozen=True)
class ControllerCase:
    """A whole reconcile: the metric, then stabilization, rate limits and bounds (reconcileAutoscaler).

    `history` None: the Go test leaves `recommendations` nil, so the controller records the current count
    first (recordInitialRecommendation); a tuple: (age, recommendation) entries of a running controller.
    `level_milli` stands for the Go test's metric; where that metric is CPU, `note` says why the row still
    applies (the outcome does not depend on the exact proposal, or the branch does not read the metric).
    """

    go_test: str
    min_replicas: int
    max_replicas: int
    current: int
    level_milli: int
    target_milli: int
    expected: int
    history: Events | None = ()
    scale_up: ScalingRules = HPA_SCALE_UP
    note: str = ""


CONTROLLER_CASES = (
    ControllerCase("TestScaleUpPerPodCMObject", 2, 6, 3, 40000, 10000, 4, history=None),
    ControllerCase("TestScaleUpPerPodCMExternal", 2, 6, 3, 8600, 2222, 4, history=None),
    ControllerCase("TestScaleDownPerPodCMObject", 2, 6, 5, 60000, 20000, 3),
    ControllerCase("TestScaleDownPerPodCMExternal", 2, 6, 5, 8600, 3000, 3),
    ControllerCase("TestTolerancePerPodCMObject", 2, 6, 4, 8600, 2200, 4, history=None),
    ControllerCase("TestTolerancePerPodCMExternal", 2, 6, 4, 8600, 2200, 4, history=None),
    ControllerCase(
        "TestScaleDownStabilizeInitialSize", 2, 6, 5, 3000, 1000, 5, history=None,
        note="CPU in Go, proposing 3 (its TestScaleDown); here a backlog proposing 3",
    ),
    ControllerCase(
        "TestScaleDownWithScalingRules", 2, 6, 5, 3000, 1000, 3, scale_up=rules(0, 0, 100, 15, 30),
        note="CPU in Go, proposing 3; here a backlog proposing 3",
    ),
    ControllerCase(
        "TestStabilizeDownscale", 1, 5, 4, 2000, 1000, 4, history=((600.0, 10), (60.0, 4)),
        note="CPU in Go, proposing 2 (50% of a 100% target on 4 pods); here a backlog proposing 2",
    ),
    ControllerCase(
        "TestMinReplicas", 2, 5, 3, 1000, 1000, 2,
        note="CPU in Go, proposing 1; here a backlog proposing 1",
    ),
    ControllerCase(
        "TestMinReplicasDesiredZero", 2, 5, 3, 0, 1000, 2,
        note="CPU 0 in Go; here an empty queue (KEDA's cooldown proposes 0, the bound holds 2)",
    ),
    ControllerCase(
        "TestZeroMinReplicasDesiredZero", 0, 5, 3, 0, 1000, 0,
        note="CPU 0 in Go; here an empty queue never seen busy: KEDA's cooldown gives the 0",
    ),
    ControllerCase(
        "TestTooFewReplicas", 3, 5, 2, 1000, 1000, 3, note="the HPA does not read the metric in this branch"
    ),
    ControllerCase(
        "TestTooManyReplicas", 3, 5, 10, 1000, 1000, 5, note="the HPA does not read the metric in this branch"
    ),
    ControllerCase(
        "TestScaleUpRCImmediately", 2, 6, 1, 1000, 1000, 2, note="the HPA does not read the metric here"
    ),
    ControllerCase(
        "TestScaleDownRCImmediately", 2, 5, 6, 1000, 1000, 5, note="the HPA does not read the metric here"
    ),
    ControllerCase(
        "TestMaxReplicas", 2, 5, 3, 100000, 1000, 5, note="CPU in Go, proposing more than 5; here 100"
    ),
    ControllerCase(
        "TestUpscaleCap", 1, 100, 3, 1000000, 1000, 24, scale_up=rules(0, 0, 700, 60, 0),
        note="CPU in Go, proposing more than 24; here 1000",
    ),
    ControllerCase(
        "TestUpscaleCapGreaterThanMaxReplicas", 1, 20, 3, 1000000, 1000, 20, scale_up=rules(0, 0, 700, 60, 0),
        note="CPU in Go, proposing more than 24; here 1000",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class StabilizationCase:
    """TestNormalizeDesiredReplicasWithBehavior: stabilizeRecommendationWithBehaviors (windows default 0)."""

    name: str
    history: Events  # (age, recommendation)
    current: int
    desired: int
    expected: int
    up_window_seconds: float = 0.0
    down_window_seconds: float = 0.0


STABILIZATION_CASES = (
    StabilizationCase("empty recommendations for scaling down", (), 100, 5, 5),
    StabilizationCase("simple scale down stabilization", ((120, 4), (60, 5)), 100, 3, 5, 0, 180),
    StabilizationCase("simple scale up stabilization", ((120, 4), (60, 5)), 1, 7, 4, 300, 0),
    StabilizationCase("no scale down stabilization", ((120, 1), (60, 2)), 100, 3, 3, 300, 0),
    StabilizationCase("no scale up stabilization", ((120, 4), (60, 5)), 1, 3, 3, 0, 300),
    StabilizationCase(
        "no scale down stabilization, reuse recommendation element", ((600, 10), (540, 9)), 100, 3, 3
    ),
    StabilizationCase(
        "no scale up stabilization, reuse recommendation element", ((600, 10), (540, 9)), 1, 100, 100
    ),
    StabilizationCase(
        "scale down stabilization, reuse one of obsolete recommendation element",
        ((600, 10), (60, 4), (120, 5), (540, 9)), 100, 3, 5, 0, 180,
    ),
    StabilizationCase(
        "scale up stabilization, reuse one of obsolete recommendation element",
        ((6000, 10), (60, 6), (120, 5), (180, 9)), 1, 100, 5, 300, 0,
    ),
    StabilizationCase(
        "scale up and down stabilization, do not scale up when prenormalized rec goes down",
        ((6000, 2), (180, 3)), 2, 1, 2, 300, 300,
    ),
    StabilizationCase(
        "scale up and down stabilization, do not scale down when prenormalized rec goes up",
        ((6000, 2), (180, 1)), 2, 3, 2, 300, 300,
    ),
)  # fmt: skip


@dataclass(frozen=True)
class RateCase:
    """convertDesiredReplicasWithBehaviorRate (TestScalingWithRules) and the limit functions' own tests."""

    go_test: str
    name: str
    min_replicas: int
    max_replicas: int
    current: int
    desired: int
    expected: int
    scale_up: ScalingRules = HPA_SCALE_UP  # GenerateHPAScaleUpRules(nil)
    scale_down: ScalingRules = HPA_SCALE_DOWN  # GenerateHPAScaleDownRules(nil)
    events: Events = ()


RULES = "TestScalingWithRules"
E159 = uniform([1, 5, 9], 120)
E8129 = uniform([8, 12, 9, 11], 120)

RATE_CASES = (
    RateCase(RULES, "prenormalized desired replicas within range", 3, 8, 5, 7, 7),
    RateCase(RULES, "prenormalized desired replicas < minReplicas", 2, 8, 3, 1, 2),
    RateCase(RULES, "prenormalized desired replicas within range when minReplicas is 0", 0, 10, 1, 0, 0),
    RateCase(RULES, "maxReplicas is the limit because maxReplicas < scaleUpLimit", 1, 10, 20, 1000, 10),
    RateCase(RULES, "desired replica count is more than the maximum replica count", 100, 150, 100, 1000, 150),
    RateCase(
        RULES, "scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
        1, 2000, 3, 1000, 4, scale_up=rules(0, 0, 1, 60, 0),
    ),
    # Skipped in Go (testThis: true returns early); ported all the same, it holds.
    RateCase(
        RULES, "scaleDownLimit is the limit because scaleDownLimit > minReplicas with user defined policies",
        3, 2000, 1000, 3, 980, scale_down=rules(20, 60, 0, 0, 0),
    ),
    RateCase(RULES, "scaleUp with default behavior", 1, 1000, 10, 50, 20),
    RateCase(
        RULES, "scaleUp with pods policy larger than percent policy", 1, 1000, 10, 500, 110,
        scale_up=rules(100, 60, 100, 60, 0),
    ),
    RateCase(
        RULES, "scaleUp with percent policy larger than pods policy", 1, 1000, 10, 500, 20,
        scale_up=rules(2, 60, 100, 60, 0),
    ),
    RateCase(
        RULES, "scaleUp with spec MaxReplicas limitation with large pod policy", 1, 1000, 10, 50, 50,
        scale_up=rules(100, 60, 0, 0, 0),
    ),
    RateCase(
        RULES, "scaleUp with spec MaxReplicas limitation with large percent policy", 1, 1000, 10, 50, 50,
        scale_up=rules(10000, 60, 0, 0, 0),
    ),
    RateCase(
        RULES, "scaleUp with pod policy limitation", 1, 1000, 10, 50, 40, scale_up=rules(30, 60, 0, 0, 0)
    ),
    RateCase(
        RULES, "scaleUp with percent policy limitation", 1, 1000, 10, 50, 30, scale_up=rules(0, 0, 200, 60, 0)
    ),
    RateCase(
        RULES, "scaleDown with percent policy larger than pod policy", 1, 1000, 100, 2, 80,
        scale_down=rules(20, 60, 1, 60, 300),
    ),
    RateCase(
        RULES, "scaleDown with pod policy larger than percent policy", 1, 1000, 100, 2, 98,
        scale_down=rules(2, 60, 1, 60, 300),
    ),
    RateCase(
        RULES, "scaleDown with spec MinReplicas=nil limitation with large pod policy", 1, 1000, 10, 0, 1,
        scale_down=rules(100, 60, 0, 0, 300),
    ),
    RateCase(
        RULES, "scaleDown with spec MinReplicas limitation with large pod policy", 1, 1000, 10, 0, 1,
        scale_down=rules(100, 60, 0, 0, 300),
    ),
    RateCase(
        RULES, "scaleDown with spec MinReplicas limitation with large percent policy", 5, 1000, 10, 2, 5,
        scale_down=rules(0, 0, 100, 60, 300),
    ),
    RateCase(
        RULES, "scaleDown with pod policy limitation", 1, 1000, 10, 2, 5, scale_down=rules(5, 60, 0, 0, 300)
    ),
    RateCase(
        RULES, "scaleDown with percent policy limitation", 1, 1000, 10, 5, 5,
        scale_down=rules(0, 0, 50, 60, 300),
    ),
    RateCase(
        RULES, "scaleUp with spec MaxReplicas limitation with large pod policy and events", 1, 200, 100, 500,
        200, scale_up=rules(300, 60, 0, 0, 0), events=E159,
    ),
    RateCase(
        RULES, "scaleUp with spec MaxReplicas limitation with large percent policy and events", 1, 200, 100,
        500, 200, scale_up=rules(0, 0, 10000, 60, 0), events=E159,
    ),
    RateCase(
        RULES,
        "scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up "
        "events",
        1, 1000, 100, 500, 100, scale_up=rules(5, 120, 0, 0, 0), events=E159,
    ),
    RateCase(
        RULES, "scaleUp with pod policy and previous scale up events", 1, 1000, 100, 500, 235,
        scale_up=rules(150, 120, 0, 0, 0), events=E159,
    ),
    RateCase(
        RULES, "scaleUp with percent policy and previous scale up events", 1, 1000, 100, 500, 255,
        scale_up=rules(0, 0, 200, 120, 0), events=E159,
    ),
    RateCase(
        RULES, "scaleUp with percent policy and previous scale up and down events", 1, 1000, 6, 24, 16,
        scale_up=rules(0, 0, 300, 300, 0), events=uniform([4], 120) + down(uniform([2], 120)),
    ),
    RateCase(
        RULES, "scaleDown with default policy and previous events", 1, 1000, 10, 5, 5, events=down(E159)
    ),
    RateCase(
        RULES, "scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events",
        1, 1000, 100, 0, 1, scale_down=rules(115, 120, 0, 0, 300), events=down(E159),
    ),
    RateCase(
        RULES, "scaleDown with spec MinReplicas limitation with large pod policy and previous events",
        5, 1000, 100, 0, 5, scale_down=rules(130, 120, 0, 0, 300), events=down(E159),
    ),
    RateCase(
        RULES, "scaleDown with spec MinReplicas limitation with large percent policy and previous events",
        5, 1000, 100, 2, 5, scale_down=rules(0, 0, 100, 120, 300), events=down(E159),
    ),
    RateCase(
        RULES, "scaleDown with pod policy limitation and previous events", 1, 1000, 100, 2, 100,
        scale_down=rules(5, 120, 0, 0, 300), events=down(E159),
    ),
    RateCase(
        RULES, "scaleDown with percent policy limitation and previous events", 1, 1000, 100, 0, 56,
        scale_down=rules(0, 0, 50, 120, 300), events=down(uniform([2, 4, 6], 120)),
    ),
    RateCase(
        RULES, "scaleDown with percent policy and previous scale up and down events", 1, 1000, 10, 1, 6,
        scale_down=rules(0, 0, 50, 180, 0), events=uniform([2], 120) + down(uniform([4], 120)),
    ),
    RateCase(
        RULES, "scaleDown with previous events preventing further scale down", 1, 1000, 100, 0, 100,
        scale_down=rules(0, 0, 10, 120, 300), events=down(uniform([10, 10, 10], 120)),
    ),
    RateCase(
        RULES, "scaleDown with with previous events still allowing more scale down", 1, 1000, 10, 5, 5,
        scale_down=rules(0, 0, 1000, 120, 300), events=down(uniform([10, 10, 10], 120)),
    ),
    RateCase(
        RULES, "check 'outdated' flag for events for one behavior for up", 1, 1000, 100, 200, 200,
        scale_up=rules(1000, 60, 0, 0, 0), events=E8129,
    ),
    RateCase(
        RULES, "check that events were not marked 'outdated' for two different policies in the behavior "
        "for up", 1, 1000, 100, 200, 200, scale_up=rules(1000, 120, 100, 60, 0), events=E8129,
    ),
    RateCase(
        RULES, "check that events were marked 'outdated' for two different policies in the behavior for up",
        1, 1000, 100, 200, 200, scale_up=rules(1000, 30, 100, 60, 0), events=E8129,
    ),
    RateCase(
        RULES, "check 'outdated' flag for events for one behavior for down", 1, 1000, 100, 5, 5,
        scale_down=rules(1000, 60, 0, 0, 300), events=down(E8129),
    ),
    RateCase(
        RULES, "check that events were not marked 'outdated' for two different policies in the behavior "
        "for down", 1, 1000, 100, 5, 5, scale_down=rules(1000, 120, 100, 60, 300), events=down(E8129),
    ),
    RateCase(
        RULES, "check that events were marked 'outdated' for two different policies in the behavior for "
        "down", 1, 1000, 100, 5, 5, scale_down=rules(1000, 30, 100, 60, 300), events=down(E8129),
    ),
    # The limit functions' own tests: selectPolicy Min, no events; any desired beyond the limit shows it.
    RateCase(
        "TestCalculateScaleUpLimitWithScalingRules", "Min of 2 pods / 50% per 60 s from 1", 1, 1000, 1,
        1000, 2, scale_up=ScalingRules(300, (RatePolicy("Pods", 2, 60), RatePolicy("Percent", 50, 60)),
                                       "Min"),
    ),
    RateCase(
        "TestCalculateScaleDownLimitWithBehaviors", "Min of 2 pods / 50% per 60 s from 5", 0, 1000, 5, 0, 3,
        scale_down=ScalingRules(300, (RatePolicy("Pods", 2, 60), RatePolicy("Percent", 50, 60)),
                                "Min"),
    ),
)  # fmt: skip

# --- what cannot apply, and why ---

CPU = (
    "Resource (CPU) utilization of pod requests, pod readiness and phases: a queue consumer scales on its "
    "backlog"
)
VALUE = (
    "a Value target: the total against the target, times the ready pods; our backlog target is per replica "
    "(AverageValue) and counts no pod readiness"
)
PODS = "a Pods metric: per-pod readings averaged over the pods; our backlog is one number for the whole queue"
METRICS_API = (
    "failures and gaps among several metrics: we read one backlog source, whose failure is the fallback step"
)
API_OBJECTS = "the HPA object's conditions, events, selectors and API writes, not the replica count"
NO_BEHAVIOR = (
    "the path of an HPA without `behavior` (scale up to max(2 x current, 4), a down window that still counts "
    "a recommendation exactly a window old); HPA-compatible mode is `behavior` at its default values"
)
SPEC_STATUS = "status.replicas apart from spec.replicas during a rollout: we read one count"
ZERO = "spec.replicas 0 switches the HPA off; in our decision KEDA's activation owns 0 -> 1 (test_decide.py)"
STORAGE = (
    "how the controller reuses slots of its event list; we keep the events younger than the longest period, "
    "and TestScalingWithRules' 'outdated' rows check the limits that result"
)

_REASONS = {
    CPU: """
        TestScaleUp TestScaleUpContainer TestScaleUpUnreadyLessScale TestScaleUpHotCpuLessScale
        TestScaleUpUnreadyNoScale TestScaleUpHotCpuNoScale TestScaleUpIgnoresFailedPods
        TestScaleUpIgnoresDeletionPods TestScaleUpDeployment TestScaleUpReplicaSet
        TestScaleUpCMUnreadyAndHotCpuNoLessScale TestScaleUpCMUnreadyandCpuHot
        TestScaleUpHotCpuNoScaleWouldScaleDown TestScaleDown TestScaleDownContainerResource
        TestScaleDownIncludeUnreadyPods TestScaleDownIgnoreHotCpuPods TestScaleDownIgnoresFailedPods
        TestScaleDownIgnoresDeletionPods TestTolerance TestConfigurableTolerance TestEmptyCPURequest
        TestNoBackoffUpscaleCMNoBackoffCpu TestComputedToleranceAlgImplementation
        TestReplicaCalcDisjointResourcesMetrics TestReplicaCalcScaleUp TestReplicaCalcContainerScaleUp
        TestReplicaCalcScaleUpUnreadyLessScale TestReplicaCalcScaleUpContainerHotCpuLessScale
        TestReplicaCalcScaleUpHotCpuLessScale TestReplicaCalcScaleUpUnreadyNoScale
        TestReplicaCalcScaleHotCpuNoScale TestReplicaCalcScaleUpIgnoresFailedPods
        TestReplicaCalcMissingContainerMetricScaleUpIgnoresFailedPods
        TestReplicaCalcScaleUpContainerIgnoresFailedPods TestReplicaCalcScaleUpIgnoresDeletionPods
        TestReplicaCalcScaleUpContainerIgnoresDeletionPods
        TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale
        TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown TestReplicaCalcScaleDown
        TestReplicaCalcContainerScaleDown TestReplicaCalcScaleDownExcludeUnreadyPods
        TestReplicaCalcScaleDownContainerExcludeUnreadyPods
        TestReplicaCalcScaleDownExcludeUnscheduledPods
        TestReplicaCalcScaleDownContainerExcludeUnscheduledPods TestReplicaCalcScaleDownIgnoreHotCpuPods
        TestReplicaCalcScaleDownContainerIgnoreHotCpuPods TestReplicaCalcScaleDownIgnoresFailedPods
        TestReplicaCalcScaleDownContainerIgnoresFailedPods TestReplicaCalcScaleDownIgnoresDeletionPods
        TestReplicaCalcScaleDownIgnoresDeletionPods_StillRunning TestReplicaCalcTolerance
        TestReplicaCalcConfigurableTolerance TestReplicaCalcEmptyCPURequest
        TestReplicaCalcMissingMetricsNoChangeEq TestReplicaCalcMissingMetricsNoChangeGt
        TestReplicaCalcMissingMetricsNoChangeLt TestReplicaCalcMissingMetricsUnreadyChange
        TestReplicaCalcMissingMetricsHotCpuNoChange TestReplicaCalcMissingMetricsUnreadyScaleUp
        TestReplicaCalcMissingMetricsHotCpuScaleUp TestReplicaCalcMissingMetricsUnreadyScaleDown
        TestReplicaCalcMissingMetricsScaleDownTargetOver100
        TestReplicaCalcComputedToleranceAlgImplementation TestGroupPods TestCalculatePodRequests""",
    VALUE: """
        TestScaleUpCMObject TestScaleUpFromZeroCMObject TestScaleUpFromZeroIgnoresToleranceCMObject
        TestScaleUpCMExternal TestScaleDownCMObject TestScaleDownToZeroCMObject TestScaleDownCMExternal
        TestScaleDownToZeroCMExternal TestToleranceCMObject TestToleranceCMExternal
        TestReplicaCalcScaleUpCMObject TestReplicaCalcScaleUpCMObjectIgnoresUnreadyPods
        TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods TestReplicaCalcScaleDownCMObject
        TestReplicaCalcScaleDownCMExternal TestReplicaCalcToleranceCMObject
        TestReplicaCalcToleranceCMExternal TestReplicaCalcConfigurableToleranceCMObject
        TestReplicaCalcConfigurableToleranceCMExternal""",
    PODS: """
        TestScaleUpCM TestScaleDownCM TestToleranceCM TestNoBackoffUpscaleCM TestReplicaCalcScaleUpCM
        TestReplicaCalcScaleDownCM TestReplicaCalcToleranceCM TestReplicaCalcConfigurableToleranceCM
        TestReplicaCalcScaleUpCMExternal TestReplicaCalcScaleUpCMExternalNoLabels
        TestPlainMetricReplicaCalcMissingMetricsNoChangeEq
        TestReplicaCalcDuringRollingUpdateWithMaxSurgeCM""",
    METRICS_API: """
        TestScaleUpOneMetricInvalid TestScaleUpFromZeroOneMetricInvalid TestScaleUpBothMetricsEmpty
        TestScaleUpOneMetricEmpty TestNoScaleDownOneMetricInvalid TestNoScaleDownOneMetricEmpty
        TestSuperfluousMetrics TestMissingMetrics TestEmptyMetrics TestMissingReports
        TestReplicaCalcSuperfluousMetrics TestReplicaCalcMissingMetrics TestReplicaCalcEmptyMetrics""",
    API_OBJECTS: """
        TestEventCreated TestEventNotCreated TestConditionInvalidSelectorMissing
        TestConditionInvalidSelectorUnparsable
        TestConditionNoAmbiguousSelectorWhenNoSelectorOverlapBetweenHPAs
        TestConditionAmbiguousSelectorWhenFullSelectorOverlapBetweenHPAs
        TestConditionAmbiguousSelectorWhenPartialSelectorOverlapBetweenHPAs
        TestConditionFailedGetMetrics TestConditionInvalidSourceType TestConditionFailedGetScale
        TestConditionFailedUpdateScale TestAvoidUnnecessaryUpdates TestMultipleHPAs""",
    NO_BEHAVIOR: "TestConvertDesiredReplicasWithRules TestNormalizeDesiredReplicas",
    SPEC_STATUS: "TestMoreReplicasThanSpecNoScale TestReplicaCalcDuringRollingUpdateWithMaxSurge",
    ZERO: "TestZeroReplicas",
    STORAGE: "TestStoreScaleEvents",
}
NOT_APPLICABLE = {name: reason for reason, names in _REASONS.items() for name in names.split()}

# Every Test function of the two files at K8S_VERSION, in file order (whitespace-separated): each is ported
# above or listed in NOT_APPLICABLE.
GO_TESTS = {
    HORIZONTAL: """
        TestScaleUp TestScaleUpContainer TestScaleUpUnreadyLessScale TestScaleUpHotCpuLessScale
        TestScaleUpUnreadyNoScale TestScaleUpHotCpuNoScale TestScaleUpIgnoresFailedPods
        TestScaleUpIgnoresDeletionPods TestScaleUpDeployment TestScaleUpReplicaSet TestScaleUpCM
        TestScaleUpCMUnreadyAndHotCpuNoLessScale TestScaleUpCMUnreadyandCpuHot
        TestScaleUpHotCpuNoScaleWouldScaleDown TestScaleUpCMObject TestScaleUpFromZeroCMObject
        TestScaleUpFromZeroIgnoresToleranceCMObject TestScaleUpPerPodCMObject TestScaleUpCMExternal
        TestScaleUpPerPodCMExternal TestScaleDown TestScaleDownContainerResource
        TestScaleDownWithScalingRules TestScaleUpOneMetricInvalid
        TestScaleUpFromZeroOneMetricInvalid TestScaleUpBothMetricsEmpty
        TestScaleDownStabilizeInitialSize TestScaleDownCM TestScaleDownCMObject
        TestScaleDownToZeroCMObject TestScaleDownPerPodCMObject TestScaleDownCMExternal
        TestScaleDownToZeroCMExternal TestScaleDownPerPodCMExternal TestScaleDownIncludeUnreadyPods
        TestScaleDownIgnoreHotCpuPods TestScaleDownIgnoresFailedPods
        TestScaleDownIgnoresDeletionPods TestTolerance TestConfigurableTolerance TestToleranceCM
        TestToleranceCMObject TestToleranceCMExternal TestTolerancePerPodCMObject
        TestTolerancePerPodCMExternal TestMinReplicas TestZeroMinReplicasDesiredZero
        TestMinReplicasDesiredZero TestZeroReplicas TestTooFewReplicas TestTooManyReplicas
        TestMaxReplicas TestSuperfluousMetrics TestMissingMetrics TestEmptyMetrics
        TestEmptyCPURequest TestEventCreated TestEventNotCreated TestMissingReports TestUpscaleCap
        TestUpscaleCapGreaterThanMaxReplicas TestMoreReplicasThanSpecNoScale
        TestConditionInvalidSelectorMissing TestConditionInvalidSelectorUnparsable
        TestConditionNoAmbiguousSelectorWhenNoSelectorOverlapBetweenHPAs
        TestConditionAmbiguousSelectorWhenFullSelectorOverlapBetweenHPAs
        TestConditionAmbiguousSelectorWhenPartialSelectorOverlapBetweenHPAs
        TestConditionFailedGetMetrics TestConditionInvalidSourceType TestConditionFailedGetScale
        TestConditionFailedUpdateScale TestNoBackoffUpscaleCM TestNoBackoffUpscaleCMNoBackoffCpu
        TestStabilizeDownscale TestComputedToleranceAlgImplementation TestScaleUpRCImmediately
        TestScaleDownRCImmediately TestAvoidUnnecessaryUpdates TestConvertDesiredReplicasWithRules
        TestCalculateScaleUpLimitWithScalingRules TestCalculateScaleDownLimitWithBehaviors
        TestNormalizeDesiredReplicas TestScalingWithRules TestStoreScaleEvents
        TestNormalizeDesiredReplicasWithBehavior TestScaleUpOneMetricEmpty
        TestNoScaleDownOneMetricInvalid TestNoScaleDownOneMetricEmpty TestMultipleHPAs""",
    CALCULATOR: """
        TestReplicaCalcDisjointResourcesMetrics TestReplicaCalcScaleUp
        TestReplicaCalcContainerScaleUp TestReplicaCalcScaleUpUnreadyLessScale
        TestReplicaCalcScaleUpContainerHotCpuLessScale TestReplicaCalcScaleUpHotCpuLessScale
        TestReplicaCalcScaleUpUnreadyNoScale TestReplicaCalcScaleHotCpuNoScale
        TestReplicaCalcScaleUpIgnoresFailedPods
        TestReplicaCalcMissingContainerMetricScaleUpIgnoresFailedPods
        TestReplicaCalcScaleUpContainerIgnoresFailedPods TestReplicaCalcScaleUpIgnoresDeletionPods
        TestReplicaCalcScaleUpContainerIgnoresDeletionPods TestReplicaCalcScaleUpCM
        TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale
        TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown TestReplicaCalcScaleUpCMObject
        TestReplicaCalcScaleUpCMPerPodObject TestReplicaCalcScaleUpCMObjectIgnoresUnreadyPods
        TestReplicaCalcScaleUpCMExternal TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods
        TestReplicaCalcScaleUpCMExternalNoLabels TestReplicaCalcScaleUpPerPodCMExternal
        TestReplicaCalcScaleDown TestReplicaCalcContainerScaleDown TestReplicaCalcScaleDownCM
        TestReplicaCalcScaleDownPerPodCMObject TestReplicaCalcScaleDownCMObject
        TestReplicaCalcScaleDownCMExternal TestReplicaCalcScaleDownPerPodCMExternal
        TestReplicaCalcScaleDownExcludeUnreadyPods
        TestReplicaCalcScaleDownContainerExcludeUnreadyPods
        TestReplicaCalcScaleDownExcludeUnscheduledPods
        TestReplicaCalcScaleDownContainerExcludeUnscheduledPods
        TestReplicaCalcScaleDownIgnoreHotCpuPods TestReplicaCalcScaleDownContainerIgnoreHotCpuPods
        TestReplicaCalcScaleDownIgnoresFailedPods TestReplicaCalcScaleDownContainerIgnoresFailedPods
        TestReplicaCalcScaleDownIgnoresDeletionPods
        TestReplicaCalcScaleDownIgnoresDeletionPods_StillRunning TestReplicaCalcTolerance
        TestReplicaCalcToleranceCM TestReplicaCalcToleranceCMObject
        TestReplicaCalcTolerancePerPodCMObject TestReplicaCalcToleranceCMExternal
        TestReplicaCalcTolerancePerPodCMExternal TestReplicaCalcConfigurableTolerance
        TestReplicaCalcConfigurableToleranceCM TestReplicaCalcConfigurableToleranceCMObject
        TestReplicaCalcConfigurableTolerancePerPodCMObject
        TestReplicaCalcConfigurableToleranceCMExternal
        TestReplicaCalcConfigurableTolerancePerPodCMExternal TestReplicaCalcSuperfluousMetrics
        TestReplicaCalcMissingMetrics TestReplicaCalcEmptyMetrics TestReplicaCalcEmptyCPURequest
        TestPlainMetricReplicaCalcMissingMetricsNoChangeEq TestReplicaCalcMissingMetricsNoChangeEq
        TestReplicaCalcMissingMetricsNoChangeGt TestReplicaCalcMissingMetricsNoChangeLt
        TestReplicaCalcMissingMetricsUnreadyChange TestReplicaCalcMissingMetricsHotCpuNoChange
        TestReplicaCalcMissingMetricsUnreadyScaleUp TestReplicaCalcMissingMetricsHotCpuScaleUp
        TestReplicaCalcMissingMetricsUnreadyScaleDown
        TestReplicaCalcMissingMetricsScaleDownTargetOver100
        TestReplicaCalcDuringRollingUpdateWithMaxSurge
        TestReplicaCalcDuringRollingUpdateWithMaxSurgeCM
        TestReplicaCalcComputedToleranceAlgImplementation TestGroupPods TestCalculatePodRequests""",
}

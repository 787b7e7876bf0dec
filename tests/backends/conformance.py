"""The backend conformance suite: what every backend must honour, written once (like diffusers' tester
mixins in ``tests/pipelines/test_pipelines_common.py``) and run against each backend family.

A family's test class inherits :class:`BackendConformance`, names its ``kind`` and says how to build
one (:meth:`~BackendConformance.base_options`, or :meth:`~BackendConformance.make_backend` itself),
which options decide pixels and which do not, a request the backend refuses, and the capabilities it
declares. The checks only use the contract (:mod:`sdkit.backends.base`) and the registry: a backend
written outside sdkit runs them the same way (see ``test_conformance.py``).

The checks, one behaviour each:

- the kind is registered and :func:`sdkit.create_backend` builds a backend named after it;
- :func:`sdkit.backends.base.identity` is JSON, holds the name and batching, is stable (across calls,
  across backends built alike, across a generation), ignores settings that do not decide pixels,
  changes with each one that does, and never carries a credential;
- ``generate`` returns a :class:`~sdkit.GenerationResult` matching the request (params, images, seeds,
  model, backend), whose per-image records are JSON;
- ``generate_many`` keeps order, reports each request once, and either leaves a refused request's
  :class:`~sdkit.SdkitError` at its index (``return_errors=True``) or raises it;
- declared capabilities are honoured (progress, warm-up, regeneration, batching as the planner says),
  and a backend declaring none reads as :data:`~sdkit.backends.base.NO_CAPABILITIES`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

import sdkit
from sdkit.backends.base import NO_CAPABILITIES, Backend, Capabilities, capabilities, identity
from sdkit.engine.planner import plan_batches
from sdkit.errors import SdkitError, ValidationError
from sdkit.params import GenerationParams
from sdkit.result import GenerationResult

__all__ = ["BackendConformance"]


class BackendConformance:
    """Mixin of contract checks; a concrete ``Test…`` class fills in the hooks below."""

    #: The registered kind under test.
    kind: ClassVar[str]
    #: What ``capabilities(backend)`` must be for a backend built with :meth:`base_options`.
    expected_capabilities: ClassVar[Capabilities] = NO_CAPABILITIES
    #: Whether results carry each image's seed (``params.seeds``); otherwise seeds may be None.
    knows_seeds: ClassVar[bool] = True
    #: A credential given in :meth:`base_options`, which must show nowhere (identity, repr, records, errors).
    secret: ClassVar[str | None] = None
    #: The request fields every check starts from (small and fast: 64×64, 2 steps).
    request_fields: ClassVar[dict[str, Any]] = {"seed": 7, "width": 64, "height": 64, "num_inference_steps": 2}

    # --- hooks ---------------------------------------------------------------------------

    def base_options(self) -> dict[str, Any]:
        """The options the backend under test is built with."""
        return {}

    def make_backend(self, **options: Any) -> Backend:
        """A backend built through the registry with :meth:`base_options` updated by ``options``."""
        return sdkit.create_backend(self.kind, **{**self.base_options(), **options})

    def close_backend(self, backend: Backend) -> None:
        """Release what the backend under test holds, once the class is done (nothing by default)."""

    def pixel_options(self) -> list[dict[str, Any]]:
        """Option changes, each of which decides pixels and so must change the identity."""
        raise NotImplementedError

    def neutral_options(self) -> list[dict[str, Any]]:
        """Option changes that do not decide pixels (credentials, concurrency, progress bars): same identity."""
        return []

    def credential_options(self) -> list[dict[str, Any]]:
        """Other ways to give the credential :attr:`secret` (a password in a URL, say): it must show nowhere either."""
        return []

    def bad_params(self) -> GenerationParams:
        """A request this backend refuses with an :class:`~sdkit.SdkitError` (say, a model it cannot load)."""
        raise NotImplementedError

    def expected_model(self, params: GenerationParams) -> str:
        """The model a result of ``params`` names (a remote backend sends its own for embedded names)."""
        return params.model

    def observed_calls(self, backend: Backend, results: list[Any], order: list[int]) -> list[list[int]]:
        """The request indices of each call the backend made during one ``generate_many``, in the order
        made; ``order`` is the indices as ``on_result`` reported them.

        By default read from what the local backend records: ``details["batch_offset"]`` is 0 for the
        first request of a call, and a call's requests are reported together. A batching backend that
        records its calls otherwise overrides this."""
        calls: list[list[int]] = []
        for index in order:
            details = results[index].details
            if "batch_offset" not in details:
                pytest.fail(
                    f"{self.kind}: the results do not say which call made them; override observed_calls to read it"
                )
            if details["batch_offset"] == 0:
                calls.append([])
            calls[-1].append(index)
        return calls

    def request(self, prompt: str = "a red circle", **fields: Any) -> GenerationParams:
        """A small request: :attr:`request_fields` updated by ``fields``."""
        return GenerationParams(prompt, **{**self.request_fields, **fields})

    # --- the backend under test, built once per class --------------------------------------

    @pytest.fixture(scope="class")
    def conformant(self):
        backend = self.make_backend()
        yield backend
        self.close_backend(backend)

    def _without_secret(self, *texts: str) -> None:
        if self.secret is None:
            return
        for text in texts:
            assert self.secret not in text, f"the credential leaked into {text[:200]!r}…"

    def _check_result(self, backend: Backend, params: GenerationParams, result: Any) -> None:
        assert isinstance(result, GenerationResult), f"not a GenerationResult: {result!r}"
        model = self.expected_model(params)
        assert result.params == params.replace(model=model)
        assert result.model == model
        assert result.backend == backend.name
        assert len(result.images) == params.num_images
        size = (params.width, params.height)
        assert [im.size for im in result.images] == [size] * params.num_images
        if self.knows_seeds:
            assert result.seeds == params.seeds
        else:
            assert all(got in (None, sent) for got, sent in zip(result.seeds, params.seeds, strict=True))
        for i in range(len(result)):
            record = json.dumps(result.record(i), sort_keys=True)  # manifests write it
            self._without_secret(record)
        self._without_secret(repr(result), repr(dict(result.details)))

    # --- registry ------------------------------------------------------------------------

    def test_its_kind_is_registered_and_the_registry_builds_it(self, conformant):
        assert self.kind in sdkit.backend_kinds()
        assert conformant.name == self.kind
        assert isinstance(conformant, Backend)

    def test_the_registry_refuses_an_unknown_option_by_name(self):
        with pytest.raises(ValidationError, match="no_such_option"):
            self.make_backend(no_such_option=1)

    # --- identity ------------------------------------------------------------------------

    def test_identity_is_json_with_name_and_batching(self, conformant):
        ident = identity(conformant)
        assert json.loads(json.dumps(ident, sort_keys=True)) == ident
        assert ident["name"] == conformant.name
        caps = capabilities(conformant)
        batched = caps.max_batch > 1 or caps.batch_key is not None
        assert ident["batching"] == (f"max_batch={caps.max_batch}" if batched else "none")

    def test_a_credential_shows_nowhere(self, conformant):
        if self.secret is None:
            pytest.skip(f"{self.kind} is built without a credential")
        for options in [{}, *self.credential_options()]:
            backend = self.make_backend(**options) if options else conformant
            try:
                self._without_secret(json.dumps(identity(backend)), repr(backend), str(backend))
                outcome = backend.generate_many([self.request()], return_errors=True)[0]
                if isinstance(outcome, Exception):
                    self._without_secret(str(outcome), repr(outcome))
                else:
                    self._check_result(backend, self.request(), outcome)
            finally:
                if options:
                    self.close_backend(backend)

    def test_identity_is_stable_across_calls_and_backends_built_alike(self, conformant):
        assert identity(conformant) == identity(conformant)
        assert identity(self.make_backend()) == identity(conformant)

    def test_settings_that_do_not_decide_pixels_leave_the_identity(self, conformant):
        for change in self.neutral_options():
            assert identity(self.make_backend(**change)) == identity(conformant), change

    def test_each_pixel_deciding_setting_changes_the_identity(self, conformant):
        changes = self.pixel_options()
        assert changes, "name at least one option that decides pixels"
        seen = [identity(conformant)]
        for change in changes:
            ident = identity(self.make_backend(**change))
            assert ident not in seen, f"{change} did not change the identity {ident}"
            seen.append(ident)

    def test_identity_does_not_change_by_generating(self, conformant):
        before = identity(conformant)
        conformant.generate(self.request())
        assert identity(conformant) == before

    # --- generate ------------------------------------------------------------------------

    def test_generate_returns_a_result_matching_the_request(self, conformant):
        params = self.request("a blue square", seed=41, num_images=2)
        self._check_result(conformant, params, conformant.generate(params))

    def test_generate_refuses_a_bad_request_with_an_sdkit_error(self, conformant):
        with pytest.raises(SdkitError) as caught:
            conformant.generate(self.bad_params())
        self._without_secret(str(caught.value), repr(caught.value))

    # --- generate_many -------------------------------------------------------------------

    def test_generate_many_of_nothing_is_nothing(self, conformant):
        assert list(conformant.generate_many([])) == []

    def test_generate_many_keeps_order_and_reports_each_request_once(self, conformant):
        params = [self.request(p, seed=s) for p, s in [("one", 1), ("two", 2), ("three", 3)]]
        params.append(self.request("four", seed=4, num_images=2))
        reported: list[tuple[int, Any]] = []
        results = conformant.generate_many(params, on_result=lambda i, r: reported.append((i, r)))
        assert isinstance(results, list) and len(results) == len(params)
        for p, r in zip(params, results, strict=True):
            self._check_result(conformant, p, r)
        assert sorted(i for i, _ in reported) == list(range(len(params)))
        assert all(r is results[i] for i, r in reported)

    def test_generate_many_leaves_a_refused_request_at_its_index(self, conformant):
        params = [self.request("before", seed=1), self.bad_params(), self.request("after", seed=2)]
        reported: dict[int, list[Any]] = {}
        results = conformant.generate_many(
            params, on_result=lambda i, r: reported.setdefault(i, []).append(r), return_errors=True
        )
        assert len(results) == 3
        assert isinstance(results[1], SdkitError)
        self._without_secret(str(results[1]), repr(results[1]))
        self._check_result(conformant, params[0], results[0])
        self._check_result(conformant, params[2], results[2])
        assert {i: len(r) for i, r in reported.items()} == {0: 1, 1: 1, 2: 1}
        assert all(reported[i][0] is results[i] for i in range(3))

    def test_generate_many_raises_a_refused_request_without_return_errors(self, conformant):
        with pytest.raises(SdkitError):
            conformant.generate_many([self.request("fine", seed=1), self.bad_params()])

    # --- capabilities ----------------------------------------------------------------------

    def test_capabilities_are_declared_not_probed(self, conformant):
        caps = capabilities(conformant)
        assert caps == self.expected_capabilities
        if getattr(conformant, "capabilities", None) is None:  # this test is the one place allowed to look
            assert caps is NO_CAPABILITIES

    def refused_params(self) -> GenerationParams | None:
        """Parameters a backend declaring ``checks_params`` must refuse in ``check`` (None: not tested)."""
        return None

    def test_check_refuses_before_any_work_what_cannot_be_made(self, conformant):
        if not capabilities(conformant).checks_params:
            pytest.skip(f"{self.kind} does not declare checks_params")
        conformant.check([self.request()])  # what it can make passes
        bad = self.refused_params()
        if bad is None:
            pytest.skip(f"no refused parameters given for {self.kind}")
        with pytest.raises(ValidationError):
            conformant.check([self.request(), bad])

    def test_step_progress_reports_increasing_steps(self, conformant):
        if not capabilities(conformant).step_progress:
            pytest.skip(f"{self.kind} does not declare step_progress")
        seen: list[tuple[int, int]] = []
        result = conformant.generate(self.request(num_inference_steps=3), on_step=lambda s, t: seen.append((s, t)))
        assert isinstance(result, GenerationResult)
        assert seen, "on_step was never called"
        steps = [s for s, _ in seen]
        totals = {t for _, t in seen}
        assert steps == sorted(set(steps)) and steps[0] >= 1, seen
        assert len(totals) == 1 and steps[-1] == totals.pop(), seen
        seen.clear()
        conformant.generate_many(
            [self.request("many", num_inference_steps=2)], on_step=lambda s, t: seen.append((s, t))
        )
        assert seen and seen[-1][0] == seen[-1][1], seen

    def test_load_warms_up_so_the_next_request_loads_nothing(self, conformant):
        if not capabilities(conformant).loads:
            pytest.skip(f"{self.kind} does not declare loads")
        params = self.request()
        conformant.load(params.model)
        assert conformant.generate(params).timings.load_s == 0

    def test_a_refused_request_keeps_the_warm_model(self, conformant):
        if not capabilities(conformant).loads:
            pytest.skip(f"{self.kind} does not declare loads")
        params = self.request()
        conformant.load(params.model)
        assert isinstance(conformant.generate_many([self.bad_params()], return_errors=True)[0], SdkitError)
        assert conformant.generate(params).timings.load_s == 0

    def test_a_regenerable_backend_makes_the_same_pixels_again(self, conformant):
        if not capabilities(conformant).regenerable:
            pytest.skip(f"{self.kind} does not declare regenerable")
        params = self.request("a green triangle", seed=123, num_images=2)
        first = conformant.generate(params)
        again = conformant.generate(params)
        assert [im.tobytes() for im in first.images] == [im.tobytes() for im in again.images]

    def test_requests_are_batched_as_the_planner_says(self, conformant):
        caps = capabilities(conformant)
        if caps.max_batch == 1:
            pytest.skip(f"{self.kind} makes one image per call")
        steps = self.request_fields.get("num_inference_steps", 2)
        params = [
            self.request("a", seed=1),
            self.request("b", seed=2, num_images=2),
            self.request("c", seed=3, num_inference_steps=steps + 1),
            self.request("d", seed=4),
            self.request("e", seed=5, guidance_scale=5.0),
            self.request("f", seed=6, num_images=min(2, caps.max_batch)),
            self.request("g", seed=7, width=128),
        ]
        order: list[int] = []
        results = conformant.generate_many(params, on_result=lambda i, _r: order.append(i))
        for p, r in zip(params, results, strict=True):
            self._check_result(conformant, p, r)
        expected = plan_batches(params, caps)
        assert len(expected) < len(params), "the requests should exercise batching"
        assert self.observed_calls(conformant, results, order) == expected

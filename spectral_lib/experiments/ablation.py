"""The checkerboard studies of the book: which regularizers chapter 5 compares, which λ and formulations chapter 6
sweeps, which training seeds each checks, how their runs are named and cached, and the numbers that say "blurred" or
"crisp".

Every number of those two chapters that is not in a notebook's parameters cell lives here or in the checkerboard
profiles (:mod:`spectral_lib.experiments.profiles`)::

    from spectral_lib.experiments.ablation import COMPARISON, Variant, run_variant, checkerboard_scores
    results = {reg: run_variant(Variant(reg), profile="cpu") for reg in COMPARISON["cpu"]}

A :class:`Variant` is one point of a study (regularizer, λ, formulation; ``None`` means "the profile's").
:func:`run_variant` trains it with :func:`~spectral_lib.experiments.run.run_experiment` into a folder named after
the whole variant (:func:`variant_dir`), with ``resume=True``: a finished run is read back, so re-executing a notebook
costs seconds and chapter 6 executed after chapter 5 in the same folder trains only its own runs. A lock file next
to the folder keeps two notebooks executed at once from training the same run twice. The chapters themselves go
through :mod:`spectral_lib.experiments.checkerboard_results`, which ships their ``cpu`` results with the book.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spectral_lib._checks import check_choice, check_positive, check_signal
from spectral_lib.data.checkerboard import CLEAN_AGREEMENT, checkerboard_metrics
from spectral_lib.experiments.profiles import ExperimentConfig, get_profile

__all__ = [
    "Variant",
    "AblationGrid",
    "COMPARISON",
    "COMPARISON_SEEDS",
    "ABLATION",
    "ABLATION_SEEDS",
    "DDIM_ETAS",
    "comparison_variants",
    "ablation_variants",
    "variant_config",
    "variant_dir",
    "run_variant",
    "sample_with",
    "pointwise_loss_at_end",
    "DISPLAY_NAMES",
    "harmonic_cutoff",
    "SPECTRUM_FLOOR",
    "CLEAN_AGREEMENT",
    "checkerboard_scores",
    "floored_radial_spectrum",
    "mean_power_map",
    "calibration_boards",
]


# ------------------------------------------------------------------------------------------------ variants


@dataclass(frozen=True)
class Variant:
    """One point of a study: a regularizer (``"none"`` is the baseline), λ and a formulation.

    ``lambda_spec=None`` and ``formulation=None`` mean the profile's values, so that ``Variant("wavelet")`` is
    exactly chapter 5's run of that regularizer.
    """

    regularizer: str = "none"
    lambda_spec: float | None = None
    formulation: str | None = None

    def __post_init__(self) -> None:
        from spectral_lib.diffusion import FORMULATIONS
        from spectral_lib.spectral import SPECTRAL_REGULARIZERS

        check_choice(self.regularizer, "regularizer", SPECTRAL_REGULARIZERS)
        if self.lambda_spec is not None:
            check_positive(self.lambda_spec, "lambda_spec", allow_zero=True)
        if self.formulation is not None:
            check_choice(self.formulation, "formulation", FORMULATIONS)

    def overrides(self) -> dict[str, Any]:
        """The config keys this variant sets (those left to the profile are absent)."""
        changes: dict[str, Any] = {"regularizer": self.regularizer}
        if self.lambda_spec is not None:
            changes["lambda_spec"] = float(self.lambda_spec)
        if self.formulation is not None:
            changes["formulation"] = self.formulation
        return changes

    def label(self, config: ExperimentConfig | None = None) -> str:
        """A short name for tables and legends, e.g. ``"wavelet, λ=0.3"`` or ``"none (edm)"``.

        With ``config`` (the variant's resolved config) λ and the formulation are always spelled out.
        """
        lam = self.lambda_spec if config is None else config.lambda_spec
        form = self.formulation if config is None else config.formulation
        text = self.regularizer
        if self.regularizer != "none" and lam is not None:
            text += f", λ={lam:g}"
        if form is not None:
            text += f" ({form})"
        return text


@dataclass(frozen=True)
class AblationGrid:
    """Chapter 6's grid for one profile.

    Attributes:
        sweeps: ``{regularizer: λ values}``, each regularizer trained at each of its λ (profile's formulation).
        formulations: formulations each trained twice, baseline and ``formulation_regularizer`` at the profile's λ.
            DDIM shares DDPM's training: list ``"ddpm"`` and sample its networks with DDIM (:func:`sample_with`)
            rather than training them again.
        formulation_regularizer: the regularizer of the formulation comparison.
        extra: hand-picked variants (e.g. DDPM with a small λ).
    """

    sweeps: Mapping[str, tuple[float, ...]]
    formulations: tuple[str, ...]
    formulation_regularizer: str = "wavelet"
    extra: tuple[Variant, ...] = ()

    def __post_init__(self) -> None:
        if not self.sweeps or any(not lambdas for lambdas in self.sweeps.values()):
            raise ValueError(f"sweeps must map regularizers to non-empty tuples of λ values, got {self.sweeps!r}")
        for regularizer, lambdas in self.sweeps.items():
            for lam in lambdas:
                Variant(regularizer, lam)  # validates both

    @property
    def lambdas(self) -> tuple[float, ...]:
        """Every λ of the sweeps, sorted."""
        return tuple(sorted({float(lam) for lambdas in self.sweeps.values() for lam in lambdas}))

    def lambda_variants(self) -> list[Variant]:
        """The baseline, then ``Variant(regularizer, λ)`` for every sweep (profile's formulation)."""
        return [Variant("none")] + [Variant(r, lam) for r, lambdas in self.sweeps.items() for lam in lambdas]

    def formulation_variants(self) -> list[Variant]:
        """Baseline and ``formulation_regularizer`` (profile's λ) for every formulation, then :attr:`extra`."""
        pairs = [Variant(r, None, f) for f in self.formulations for r in ("none", self.formulation_regularizer)]
        return pairs + list(self.extra)


_COMPARED = ("none", "fourier_amp", "fourier_amp_phase", "fourier_amp_phase_safe", "wavelet", "wavelet_bior13")
COMPARISON: dict[str, tuple[str, ...]] = {"smoke": _COMPARED, "cpu": _COMPARED, "gpu": _COMPARED}
"""Chapter 5: the regularizers compared at each profile (the baseline first), each at the profile's λ and
formulation. All four of the paper's variants (AMP, AMPPHASE = Eq. 15 as printed, HAAR, BIOR13) at every profile,
and beside Eq. 15 our additive coupling ``fourier_amp_phase_safe`` (labelled as ours)."""

COMPARISON_SEEDS: dict[str, dict[Variant, tuple[int, ...]]] = {
    "smoke": {Variant("none"): (0, 1), Variant("wavelet"): (0, 1), Variant("fourier_amp"): (0, 1)},
    # Four training seeds of the baseline and of Haar, two of the Fourier amplitude: seven runs beyond seed 0.
    "cpu": {Variant("none"): (0, 1, 2, 3), Variant("wavelet"): (0, 1, 2, 3), Variant("fourier_amp"): (0, 1)},
    "gpu": {Variant("none"): (0, 1), Variant("wavelet"): (0, 1), Variant("fourier_amp"): (0, 1)},
}
"""Chapter 5's seed check: the training seeds of each variant (seed 0 is the comparison's own run), the same
variants at every profile. Only the scores of the other seeds are shipped, not their samples. The chapter shows
the shipped ``cpu`` check at every profile; the other profiles' are trained only where nothing is shipped."""

ABLATION: dict[str, AblationGrid] = {
    # Plumbing only, with the cpu grid's shape (so that every cell of chapter 6 runs): two λ of each regularizer,
    # DDPM next to the profile's EDM, and DDPM with a small λ.
    "smoke": AblationGrid(sweeps={"wavelet": (0.1, 1.0), "fourier_amp": (1.0, 3.0)}, formulations=("ddpm", "edm"),
                          extra=(Variant("wavelet", 0.01, "ddpm"),)),
    # Four λ of Haar, two of the Fourier amplitude (λ = 1 and the baselines come from chapter 5's cache); DDPM
    # next to EDM (DDIM by sampling DDPM's networks), and DDPM with the small λ its ε-parameterisation needs.
    # Seven new runs (chapter 6's time line gives the measured retraining time).
    "cpu": AblationGrid(sweeps={"wavelet": (0.1, 0.3, 1.0, 3.0), "fourier_amp": (1.0, 3.0)},
                        formulations=("ddpm", "edm"), extra=(Variant("wavelet", 0.01, "ddpm"),)),
    "gpu": AblationGrid(
        sweeps={r: (0.03, 0.1, 0.3, 1.0, 3.0) for r in ("wavelet", "wavelet_bior13", "fourier_amp",
                                                          "fourier_amp_phase")},
        formulations=("ddpm", "edm"), extra=(Variant("wavelet", 0.01, "ddpm"), Variant("wavelet", 0.001, "ddpm")),
    ),
}
"""Chapter 6: the ablation grid per profile (:class:`AblationGrid`)."""

ABLATION_SEEDS: dict[str, dict[Variant, tuple[int, ...]]] = {
    "smoke": {Variant("fourier_amp", 3.0): (0, 1)},
    "cpu": {Variant("fourier_amp", 3.0): (0, 1)},  # the sweep's best row at seed 0: luck or a real gain?
    "gpu": {Variant("fourier_amp", 3.0): (0, 1)},
}
"""Chapter 6's seed check (as :data:`COMPARISON_SEEDS`): every variant must be one of the grid's."""

DDIM_ETAS: tuple[float, ...] = (0.0, 0.5, 1.0)
"""Chapter 6: η of DDIM for the DDPM baseline network (0: deterministic; 1: as stochastic as the ancestral
sampler). Every DDPM network of the grid is also sampled with η = 0."""


def _profile_table(table: Mapping[str, Any], profile: str, name: str) -> Any:
    check_choice(profile, f"profile for {name}", tuple(table))
    return table[profile]


def comparison_variants(profile: str) -> list[Variant]:
    """Chapter 5's variants at ``profile``: one :class:`Variant` per regularizer of :data:`COMPARISON`."""
    return [Variant(r) for r in _profile_table(COMPARISON, profile, "COMPARISON")]


def ablation_variants(profile: str) -> list[Variant]:
    """Every variant of chapter 6 at ``profile`` (λ sweep, then formulations), each once."""
    grid: AblationGrid = _profile_table(ABLATION, profile, "ABLATION")
    seen: dict[Variant, None] = {}
    for v in grid.lambda_variants() + grid.formulation_variants():
        seen.setdefault(v, None)
    return list(seen)


# ------------------------------------------------------------------------------------------------ runs


def variant_config(variant: Variant, *, experiment: str = "checkerboard", profile: str = "cpu",
                   **overrides: Any) -> ExperimentConfig:
    """The resolved configuration of ``variant`` (profile, then the variant, then ``overrides``)."""
    return get_profile(experiment, profile).replace(**variant.overrides(), **overrides)


def variant_dir(root: str | os.PathLike[str], config: ExperimentConfig) -> Path:
    """``root/{experiment}-{profile}-{formulation}-{regularizer}-lam{λ}-seed{seed}``: the run folder of a variant.

    λ is part of the name (unlike :func:`~spectral_lib.experiments.run.default_run_dir`), so that the runs of a λ
    sweep do not share a folder. The baseline's name carries the profile's λ, which it ignores.
    """
    lam = f"{config.lambda_spec:g}".replace("+", "")
    name = f"{config.experiment}-{config.profile}-{config.formulation}-{config.regularizer}-lam{lam}-seed{config.seed}"
    return Path(root) / name


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX ``flock``); a no-op where ``fcntl`` is missing (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_variant(
    variant: Variant,
    *,
    experiment: str = "checkerboard",
    profile: str = "cpu",
    root: str | os.PathLike[str] = "runs",
    progress: bool = False,
    replace_stale: bool = False,
    **overrides: Any,
):
    """Train, sample and evaluate ``variant`` at ``profile`` in :func:`variant_dir`, or read the finished run back.

    ``run_experiment(experiment, profile=..., out=variant_dir(...), resume=True, **variant.overrides(),
    **overrides)`` under a lock file ``<folder>.lock``, so that two processes asking for the same run train it once.

    Args:
        replace_stale: when the folder holds a run of another configuration that cannot be resumed (the profile
            changed, say its learning rate), delete it and train afresh; without it such a folder raises
            :class:`ValueError`, as :func:`~spectral_lib.experiments.run.run_experiment` does.

    Returns:
        :class:`~spectral_lib.experiments.run.RunResult` (``cached=True`` when it was read back).
    """
    from spectral_lib.experiments.run import run_experiment

    config = variant_config(variant, experiment=experiment, profile=profile, **overrides)
    out = variant_dir(root, config)
    changes = {k: v for k, v in {**variant.overrides(), **overrides}.items() if k != "regularizer"}
    with _locked(out.parent / f"{out.name}.lock"):
        overwrite = replace_stale and _holds_another_run(out, config)
        return run_experiment(experiment, profile=profile, regularizer=variant.regularizer, out=out,
                              resume=not overwrite, overwrite=overwrite, progress=progress, **changes)


def _holds_another_run(out: Path, config: ExperimentConfig) -> bool:
    """Whether ``out`` holds a run whose configuration differs from ``config`` where training cannot resume."""
    import json

    from spectral_lib.experiments.train import check_resumable

    path = out / "config.json"
    if not path.exists():
        return False
    try:
        check_resumable(json.loads(path.read_text()), config, path)
    except ValueError:
        return True
    return False


def sample_with(result: Any, formulation: str, *, n: int | None = None, steps: int | None = None,
                **sample_kwargs: Any) -> torch.Tensor:
    """Samples of a finished run's EMA network drawn with the sampler of another formulation that shares its
    training: DDPM's networks with DDIM (``eta = 0`` unless ``sample_kwargs`` say otherwise) or back.

    DDIM changes only the sampler (Song et al. 2021), so chapter 6 compares DDPM's ancestral sampler and DDIM on one
    trained network instead of training it twice. Same seed as the run's own samples.

    Args:
        result: a :class:`~spectral_lib.experiments.run.RunResult` of a ``"ddpm"`` or ``"ddim"`` run.
        formulation: ``"ddpm"`` or ``"ddim"``.
        n, steps: number of samples and sampler steps (default: the run's ``n_samples`` and ``sample_steps``).

    Returns:
        ``(n, C, H, W)`` float32 samples in ``[-1, 1]`` on the CPU.
    """
    from spectral_lib.diffusion import make_formulation
    from spectral_lib.experiments import train as train_mod
    from spectral_lib.experiments.checkpoint import load_checkpoint
    from spectral_lib.experiments.run import generate_samples

    config: ExperimentConfig = result.config
    shared = ("ddpm", "ddim")
    check_choice(formulation, "formulation", shared)
    if config.formulation not in shared:
        raise ValueError(
            f"sample_with needs a run trained with 'ddpm' or 'ddim' (they share their training), got a "
            f"{config.formulation!r} run in {str(result.out_dir)!r}"
        )
    state = load_checkpoint(train_mod.checkpoint_path(result.out_dir), map_location="cpu")
    model = train_mod.build_model(config)
    model.load_state_dict(state["ema"])
    sampler = make_formulation(formulation, **config.formulation_kwargs)
    return generate_samples(
        model, sampler, tuple(state["sample_shape"]), int(n or config.n_samples), steps=steps or config.sample_steps,
        seed=train_mod.stream_seed(config.seed, "samples"), device="cpu", batch_size=config.sample_batch_size,
        sample_kwargs=sample_kwargs,
    )


def pointwise_loss_at_end(result: Any, window: int = 5) -> float:
    """The pointwise ("diffusion") part of a run's training loss: the mean over its last ``window`` log lines.

    The spectral term is left out, so that runs with different λ compare on the objective they share. Raises
    :class:`ValueError` when the run has no log (``result.history`` empty).
    """
    tail = [line["diffusion"] for line in list(result.history)[-int(window):] if "diffusion" in line]
    if not tail:
        raise ValueError(f"the run in {str(result.out_dir)!r} has no logged 'diffusion' loss (log.jsonl is empty)")
    return float(sum(tail) / len(tail))


DISPLAY_NAMES: dict[str, str] = {
    "none": "baseline (MSE only)",
    "fourier_amp": "Fourier amplitude",
    "fourier_amp_phase": "Fourier amp. + phase (Eq. 15)",
    "fourier_amp_phase_safe": "Fourier amp. + phase, additive (ours)",
    "wavelet": "Haar wavelet",
    "wavelet_bior13": "bior1.3 wavelet",
    "mrstft": "MR-STFT (beyond the paper)",
}
"""Names of the regularizers in the chapters' figures and tables (the paper's AMP, AMPPHASE, HAAR, BIOR13; the
variants beyond the paper say so)."""


# ------------------------------------------------------------------------------------------------ scores


def harmonic_cutoff(check_sizes: Sequence[int]) -> float:
    """The high-frequency cut-off for checkerboards, as a fraction of the Nyquist frequency: ``2 / min(check_sizes)``.

    A board with ``s``-pixel checks is the product of two square waves of period ``2 s``; its power sits at the odd
    harmonics ``(k, l) / (2 s)`` cycles/pixel (``k, l`` odd), 66 % of it on the fundamental ring ``sqrt(2) / (2 s)``
    and the rest from the ring ``sqrt(10) / (2 s)`` outwards: the sharp edges. The cut-off ``1 / s`` cycles/pixel lies
    between the two for every check size ``>= min(check_sizes)``, so the energy above it is the edges' share (our
    choice; the library's default cut-off, a quarter of Nyquist, would count the fundamental of 4-pixel checks as
    high frequency). 4-pixel checks: 0.5 (0.25 cycles/pixel).
    """
    sizes = tuple(check_sizes)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 3 for s in sizes):
        raise ValueError(
            f"check_sizes must be a non-empty sequence of ints >= 3 (2-pixel checks have their edge harmonics beyond "
            f"the Nyquist frequency), got {check_sizes!r}"
        )
    return 2.0 / min(sizes)


SPECTRUM_FLOOR = 1e-3
"""Power floor of the checkerboard spectra, relative to the data's mean power per frequency bin (its variance):
30 dB down. An ideal board has *no* power between its harmonics (exactly zero, not small), so a log-spectral
distance or a log plot without a floor is dominated by how far below 1e-30 the rounding errors of the data sit.
With the floor, power under it counts as "nothing" in :func:`checkerboard_scores` and the plots (our choice)."""


def checkerboard_scores(
    samples: torch.Tensor,
    data: torch.Tensor,
    check_sizes: Sequence[int] = (4,),
    *,
    floor: float = SPECTRUM_FLOOR,
    clean_agreement: float = CLEAN_AGREEMENT,
) -> dict[str, float]:
    """The numbers of chapter 5's table for generated boards ``samples`` against data boards ``data``.

    * ``hf_ratio``: :func:`~spectral_lib.metrics.spectrum.high_frequency_energy_ratio` at
      :func:`harmonic_cutoff`: share of the power in the edges' harmonics, relative to the data's. 1 as the data;
      ``< 1`` blurred (soft edges lose their harmonics); ``> 1`` more fine structure than the data (noise, stripes).
    * ``spectral_distance``: :func:`~spectral_lib.metrics.spectrum.spectral_distance` with a power floor of
      ``floor`` times the data's variance (decades, 0 = the data's radial spectrum).
    * ``binary_share``, ``ideal_agreement``, ``clean_share``, ``contrast``, ``ideal_mae``: from
      :func:`~spectral_lib.data.checkerboard.checkerboard_metrics` with the data's two values ``-1`` and ``+1``
      (``clean_share``: the share of boards without a visible defect).

    Args:
        samples: ``(B, C, H, W)`` in ``[-1, 1]``.
        data: ``(N, C, H, W)`` data boards, same image size.
        check_sizes: the check sizes of the data (profile's ``data["check_sizes"]``).
        floor: relative power floor (default :data:`SPECTRUM_FLOOR`).
        clean_agreement: per-sample agreement that counts as a clean board (default :data:`CLEAN_AGREEMENT`).
    """
    from spectral_lib.metrics.spectrum import high_frequency_energy_ratio, spectral_distance

    samples = check_signal(samples, "samples", ranks=(4,))
    data = check_signal(data, "data", ranks=(4,))
    check_positive(floor, "floor")
    eps = float(floor) * float(data.double().var())
    scores = {
        "hf_ratio": high_frequency_energy_ratio(samples, data, cutoff=harmonic_cutoff(check_sizes)),
        "spectral_distance": spectral_distance(samples, data, eps=eps),
    }
    scores.update(checkerboard_metrics(samples, tuple(check_sizes), clean_agreement=clean_agreement))
    return scores


def floored_radial_spectrum(
    x: torch.Tensor, reference: torch.Tensor, *, floor: float = SPECTRUM_FLOOR
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~spectral_lib.metrics.spectrum.radial_power_spectrum` of ``x`` with power raised to at least
    ``floor`` times the variance of ``reference`` (the data), for log plots: ``(frequencies, power)``."""
    from spectral_lib.metrics.spectrum import radial_power_spectrum

    check_positive(floor, "floor")
    freqs, power = radial_power_spectrum(x)
    level = float(floor) * float(check_signal(reference, "reference").double().var())
    return freqs, power.clamp_min(level)


def mean_power_map(x: torch.Tensor) -> torch.Tensor:
    """Mean 2-D power spectrum ``|FFT2(x)|^2 / (H W)`` over batch and channels, zero frequency at the centre
    (``fftshift``): ``(H, W)``. Row ``i`` is the vertical frequency ``(i - H // 2) / H`` cycles/pixel, column
    ``j`` the horizontal one ``(j - W // 2) / W``."""
    x = check_signal(x, "x", ranks=(4,)).detach().double()
    power = torch.fft.fft2(x, norm="ortho").abs().square().mean(dim=(0, 1))
    return torch.fft.fftshift(power).float()


def calibration_boards(
    boards: torch.Tensor,
    *,
    blur_sigma: float = 1.0,
    noise_std: float = 0.3,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Known wrong answers, to read :func:`checkerboard_scores` before any training: ``boards`` (ideal, ``(B, C, H,
    W)``) made blurred, noisy, or replaced by their amplitude impostors. Each is clipped to ``[-1, 1]`` like samples.

    * ``"blurred"``: Gaussian blur of ``blur_sigma`` pixels (gain ``exp(-2 pi^2 sigma^2 |f|^2)``, via
      :func:`~spectral_lib.spectral.fourier.radial_filter`): grey edges, what a hedging denoiser returns (chapter 1).
    * ``"noisy"``: plus Gaussian noise of standard deviation ``noise_std``: crisp layout, grainy values.
    * ``"amplitude impostor"``: each board's exact Fourier amplitude with uniformly random phases (chapter 2): a
      perfect score for the amplitude loss, no checkerboard to the eye.

    Defaults (our choice): 1 pixel of blur is a quarter of a 4-pixel check; noise 0.3 is 15 % of the data range.
    """
    from spectral_lib.spectral.fourier import radial_filter

    boards = check_signal(boards, "boards", ranks=(4,)).float()
    check_positive(blur_sigma, "blur_sigma")
    check_positive(noise_std, "noise_std")
    sigma = float(blur_sigma)
    blurred = radial_filter(boards, lambda f: torch.exp(-2 * torch.pi**2 * sigma**2 * f**2))
    noise = torch.randn(boards.shape, generator=generator)
    spectrum = torch.fft.rfft2(boards, norm="ortho")
    phase = 2 * torch.pi * torch.rand(spectrum.shape, generator=generator)
    impostor = torch.fft.irfft2(spectrum.abs() * torch.exp(1j * phase), s=boards.shape[-2:], norm="ortho")
    return {
        "blurred": blurred.clamp(-1, 1),
        "noisy": (boards + float(noise_std) * noise).clamp(-1, 1),
        "amplitude impostor": impostor.clamp(-1, 1),
    }

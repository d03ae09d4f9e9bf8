"""The paper's image experiments (its Table 1): CIFAR-10, AFHQv2 and FFHQ, and an offline version of them.

One pipeline, split by job:

- :mod:`~spectral_lib.experiments.images.profiles`: the data sets, Table 1's rows (:class:`Variant`), the paper's
  numbers, the profiles (registered on import as experiments ``cifar10``, ``afhqv2``, ``ffhq``) and the chapter's
  settings per profile;
- :mod:`~spectral_lib.experiments.images.evaluation`: run folders, training a variant, the run's own metrics,
  per-seed distances and noise verdicts, texture crops;
- :mod:`~spectral_lib.experiments.images.fid`: FID sampled as NVIDIA's ``generate.py`` does, sharded over
  ``torchrun`` ranks;
- :mod:`~spectral_lib.experiments.images.results`: result files under ``results/`` that outlive a session,
  reproduction commands, and what the ``full`` protocol costs;
- :mod:`~spectral_lib.experiments.images.chapter`: the chapter's models as shipped ``cpu`` results
  (:class:`~spectral_lib.experiments.images.chapter.ImageStudy`), and the real path's set-up;
- :mod:`~spectral_lib.experiments.images.report`: the chapter's tables and the numbers its prose quotes;
- ``python -m spectral_lib.experiments.images``: the command line (prepare data, run one row under ``torchrun``).

Data preparation is :mod:`spectral_lib.data.edm_datasets`; figures are :mod:`spectral_lib.plotting.images`.
"""

from spectral_lib.experiments.images.evaluation import (
    DEFAULT_ROOT,
    conditional_sampler,
    crop,
    find_texture_crop,
    hf_energy_maps,
    image_metrics,
    mean_std,
    metrics_over_seeds,
    noise_verdict,
    prepare_data,
    run_dir_for,
    run_variant,
    variant_config,
)
from spectral_lib.experiments.images.fid import edm_latents_and_labels, edm_seed_batches, fid_for_run
from spectral_lib.experiments.images.profiles import (
    ALL_VARIANTS,
    BEYOND_PAPER_NAMES,
    DATASETS,
    EDM_AUGMENT,
    LAMBDA_SPEC_READINGS,
    OFFLINE_EXPERIMENT,
    PAPER_BEST,
    PAPER_CIFAR10_RANGE,
    PAPER_FINETUNE_STEPS,
    PAPER_NAMES,
    PAPER_TABLE1,
    PROFILES,
    ImageDataset,
    ImageSettings,
    Variant,
    edm_network_name,
    paper_fid,
    planned_runs,
    settings,
)
from spectral_lib.experiments.images.results import (
    NOT_RUN,
    command_prefix,
    full_cost,
    read_results,
    reproduce_command,
    row_name,
    table1_rows,
    write_result,
)

__all__ = [
    "DATASETS", "ImageDataset", "EDM_AUGMENT", "OFFLINE_EXPERIMENT", "Variant", "ALL_VARIANTS", "PAPER_NAMES",
    "BEYOND_PAPER_NAMES", "PAPER_TABLE1",
    "PAPER_BEST", "PAPER_CIFAR10_RANGE", "PAPER_FINETUNE_STEPS", "LAMBDA_SPEC_READINGS", "PROFILES",
    "ImageSettings", "settings", "planned_runs", "paper_fid", "edm_network_name",
    "DEFAULT_ROOT", "image_metrics", "conditional_sampler", "run_dir_for", "prepare_data", "variant_config",
    "run_variant",
    "metrics_over_seeds", "mean_std", "noise_verdict", "hf_energy_maps", "find_texture_crop", "crop",
    "edm_seed_batches", "edm_latents_and_labels", "fid_for_run",
    "NOT_RUN", "row_name", "write_result", "read_results", "reproduce_command", "command_prefix", "table1_rows",
    "full_cost",
]

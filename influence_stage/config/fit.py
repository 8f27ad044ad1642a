"""The engine's configuration sections: how ``θ*`` is trained (``FitConfig``) and the GEX settings (``GEXConfig``).

Validated once, frozen, serialisable next to every artifact; sections of
``influence_stage.config.clean.CleanConfig`` and parameters of the engine functions. This module
imports nothing of the package's upper layers (score names are checked on first use, lazily).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Grid of fine-tuning rates probed by ft_lr="auto" (factor-2 steps); see ensemble.choose_ft_lr.
DEFAULT_LR_GRID: tuple[float, ...] = (0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
#: The rates probed on image rows (GEXConfig.image_lr_grid): the low end of DEFAULT_LR_GRID.
IMAGE_LR_GRID: tuple[float, ...] = DEFAULT_LR_GRID[:4]
#: The step floor (FitConfig.min_steps) raises the epochs at most this many times: on a few dozen images
#: the floor alone would mean thousands of passes that only memorise them.
MAX_FLOOR_FACTOR = 4


def is_image(input_shape: Sequence[int] | None) -> bool:
    """Whether rows of shape ``input_shape`` (without the batch axis) are images ``(c, h, w)``: the rows that
    ``FitConfig.min_steps`` and GEXConfig's image-only fields apply to."""
    return input_shape is not None and len(tuple(input_shape)) == 3


class FitConfig(BaseModel):
    """How ``θ*`` is trained when influence_stage trains it (and how the auto scale's held-out model is).

    Examples
    --------
    >>> from influence_stage.config import FitConfig
    >>> cfg = FitConfig(epochs=5)
    >>> cfg.epochs, cfg.lr, cfg.batch_size
    (5, 0.05, 64)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(60, ge=1, description="Training epochs for θ*.")
    lr: float = Field(0.05, gt=0, description="Peak SGD learning rate; cosine decay to 0 over the epochs.")
    batch_size: int = Field(64, ge=1, description="Minibatch size.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (Nesterov).")
    weight_decay: float = Field(5e-4, ge=0, description="L2 weight decay.")
    seed: int = Field(0, description="Seed for initialisation and batch order.")
    max_steps: int | None = Field(
        100_000, ge=1, description="Most SGD steps of a fit, in whole epochs (at least one): on large data the "
        "epochs are cut to ceil(max_steps / steps per epoch), so training costs steps rather than epochs times "
        "rows; the cosine decay runs over the epochs kept. None: always 'epochs'.")
    min_steps: int | None = Field(
        1500, ge=1, description="Fewest SGD steps of a fit of image rows (c, h, w), the CNN recipe: on small image "
        "sets the epochs are raised to ceil(min_steps / steps per epoch), at most MAX_FLOOR_FACTOR (4) times 'epochs', because a CNN trained for 'epochs' passes "
        "over a few hundred images has taken too few steps to fit them (benchmarks/detect_images.py measures it). "
        "Flat features (the MLP) keep 'epochs' unless min_steps_inputs='all'. max_steps still caps the "
        "result. None: no floor.")
    min_steps_inputs: Literal["images", "all"] = Field(
        "images", description="Which fits min_steps applies to: 'images' (rows of shape (c, h, w)) or 'all'.")
    shift_pixels: int = Field(0, ge=0, le=8, description="Image rows (c, h, w): each minibatch image moved by a "
                              "random offset of up to this many pixels in each direction while training (edges "
                              "repeated). 0 (the default): none, so θ* trains on the rows as they are; the cross-fitted "
                              "halves take GEXConfig.image_aux_shift instead of this value. Flat rows are never "
                              "shifted.")

    def floors(self, input_shape: tuple[int, ...] | None) -> bool:
        """Whether ``min_steps`` applies to rows of shape ``input_shape`` (``None``: unknown, no floor
        unless ``min_steps_inputs='all'``)."""
        if self.min_steps is None:
            return False
        return self.min_steps_inputs == "all" or is_image(input_shape)

    def steps_per_epoch(self, n_rows: int) -> int:
        """SGD steps in one epoch over ``n_rows`` rows (the ragged tail dropped, at least one)."""
        return max(int(n_rows) // max(min(self.batch_size, int(n_rows)), 1), 1)

    def epochs_for(self, n_rows: int, input_shape: tuple[int, ...] | None = None) -> int:
        """Epochs a fit of ``n_rows`` rows of shape ``input_shape`` runs: ``epochs``, raised to
        ``min_steps`` steps for image rows (see ``floors``; at most ``MAX_FLOOR_FACTOR`` times
        ``epochs``), cut by ``max_steps`` on large data.

        A many-row epoch holds many SGD steps, and past some number of steps more passes over
        redundant rows change the model little while their cost grows with N; a few-row epoch of
        images holds so few steps that ``epochs`` passes leave the CNN short of fitting them.
        """
        per_epoch = self.steps_per_epoch(n_rows)
        epochs = self.epochs
        if self.floors(input_shape):
            epochs = max(epochs, min(-(-int(self.min_steps) // per_epoch), MAX_FLOOR_FACTOR * epochs))
        if self.max_steps is None:
            return epochs
        return max(1, min(epochs, -(-self.max_steps // per_epoch)))


class GEXConfig(BaseModel):
    """Settings of geometric-ensemble influence (members, perturbation scale, scores).

    Examples
    --------
    >>> from influence_stage.config import GEXConfig
    >>> cfg = GEXConfig(chains=2, cycles=2, ft_lr=0.1)
    >>> cfg.chains * cfg.cycles  # members
    4
    >>> cfg.model_copy(update={"score": "gex"}).score
    'gex'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    chains: int = Field(8, ge=1, description="Independent chains from θ*, each seeded differently (trained together).")
    cycles: int = Field(4, ge=1, description="Cosine cycles per chain; each cycle's end is one member.")
    cycle_epochs: float = Field(1.0, gt=0, description="Length of one cycle in epochs over the training data.")
    min_cycle_steps: int = Field(12, ge=1, description="Fewest SGD steps in one cycle, whatever cycle_epochs gives "
                                 "(small sets: a cycle of a few steps barely moves the members).")
    ft_lr: float | Literal["auto"] = Field(
        "auto", description="Peak fine-tuning rate of each cycle, or 'auto' to choose it from the data "
        "(agreement with out-of-sample evidence; see ensemble.choose_ft_lr).")
    lr_grid: tuple[float, ...] = Field(DEFAULT_LR_GRID, description="Rates probed by ft_lr='auto'.")
    holdout_epochs: int = Field(8, ge=1, description="First epochs of each cross-fitted model whose out-of-sample "
                                "predictions are the yardstick of ft_lr='auto'; training goes on in doubling rounds "
                                "while the held-out half improves, up to the θ* recipe's epochs (engine.auxiliary).")
    aux_folds: int = Field(2, ge=2, le=10, description="Folds of the cross-fitted auxiliary model "
                           "(engine.auxiliary.cross_fit): 2, two halves that each predict the other; k > 2 trains k "
                           "models on k - 1 of k parts each, at the same epochs, so k - 1 times the halves' SGD "
                           "steps (on image rows lower floored_aux_share by 2/k to keep them). On flat features 5 folds flagged fewer correct labels "
                           "where the features are weak (400 digits pooled to 4×4, clean labels: 5.4% → 3.5%) but "
                           "lowered F1 on the seed means of every noisy flat setting measured and took 30-66% longer; on images at the "
                           "halves' SGD steps the folds learned less (benchmarks/aux_folds.py, benchmarks/"
                           "image_time.py variants aux-3fold*).")
    floored_aux_share: float = Field(0.75, gt=0, le=1, description="Image rows under the θ* recipe's step floor "
                                     "(FitConfig.min_steps): each cross-fitted half trains at most this share of the "
                                     "epochs θ* gets (engine.auxiliary.round_plan): three quarters in one schedule keeps "
                                     "the held-out agreement near that of the full share's doubling rounds and above "
                                     "the reliability rule for three quarters of their steps, where a half or a "
                                     "quarter fell below the rule (benchmarks/image_time.py). Flat features are not "
                                     "affected.")
    floored_aux_first: float = Field(1.0, gt=0, le=1, description="Image rows under the step floor: the cross-fitted "
                                     "halves' first round as a share of their cap (1: one cosine schedule, no "
                                     "doubling rounds, since each warm restart loses accuracy that one longer "
                                     "schedule keeps; engine.auxiliary.round_plan). Flat features are not affected.")
    image_lr_grid: tuple[float, ...] | None = Field(IMAGE_LR_GRID, description="Rates probed by ft_lr='auto' on image "
                                                    "rows (c, h, w) while lr_grid is left at its default (a grid set "
                                                    "in lr_grid is probed as given): the CNN's chosen rates lie at the "
                                                    "low end of the default grid, so probing the higher rates only "
                                                    "costs time (benchmarks/image_time.py). None: lr_grid. Flat "
                                                    "features always use lr_grid.")
    image_min_cycle_steps: int | None = Field(6, ge=1, description="Fewest SGD steps in one member cycle on image "
                                              "rows (c, h, w) while min_cycle_steps is left at its default (a floor "
                                              "set there is used as given): a CNN's steps are costly, and on a few "
                                              "hundred images one epoch already makes a cycle that keeps AP (measured "
                                              "with image_lr_grid in benchmarks/image_time.py). None: min_cycle_steps. "
                                              "Flat features always use min_cycle_steps.")
    image_aux_shift: int = Field(2, ge=0, le=8, description="Image rows (c, h, w): the cross-fitted halves train "
                                 "on minibatches moved by random offsets of up to this many pixels "
                                 "(FitConfig.shift_pixels): each half sees only half the rows, and small shifts "
                                 "let it generalise to the other half at no extra steps, so fewer clean rows "
                                 "read as contradicted (benchmarks/image_time.py, variant aux-shift2). 0: none (and one "
                                 "view, image_aux_views), for images a shift would change the class of. θ* trains with FitConfig.shift_pixels "
                                 "(default 0) and the members on the rows as they are. Flat features are not affected.")
    image_aux_views: Literal[1, 5, 9] = Field(5, description="Image rows (c, h, w): each cross-fitted half's "
                                              "probabilities of the rows it did not see are the mean over this many "
                                              "views of every image: the image itself, then moved by one pixel up, "
                                              "down, left and right (5), then diagonally (9). A half trained on half "
                                              "the images on shifted minibatches (image_aux_shift) reads the other "
                                              "half more surely from several views than from one, so fewer clean "
                                              "rows read as contradicted; it costs evaluation passes only, no "
                                              "training steps (benchmarks/image_time.py, variants aux-views5 and "
                                              "aux-views9). 1: the image alone; also 1 whenever image_aux_shift is 0 (the views are shifts "
                                              "too). Flat features are not affected.")
    image_aux_lr_scale: float = Field(4.0, gt=0, le=16, description="Image rows (c, h, w): the cross-fitted "
                                      "halves train at this multiple of FitConfig.lr (their epochs, batches and "
                                      "schedule unchanged). Each half gets a fraction of θ*'s SGD steps on half "
                                      "the rows; at 4 it learns more of the task in them than at θ*'s own rate, "
                                      "so far fewer clean images read as label errors and AP rises. On "
                                      "class-dependent flips the halves also learn more of the flip pattern and "
                                      "count fewer of those flips, which lowered F1 on some seeds and raised it on "
                                      "others; 1 keeps θ*'s rate (benchmarks/aux_recipe_probe.py; "
                                      "benchmarks/image_time.py variants aux-lr1x, aux-lr4x-count-both; "
                                      "benchmarks/downstream_images.py --aux-lr-scale). θ* and the members "
                                      "keep their rates. Flat features are not affected.")
    image_chains: int | None = Field(2, ge=1, description="Image rows (c, h, w): member chains instead of "
                                     "chains while chains is left at its default (a number set there is used as "
                                     "given); 2 (the chosen rate's two probe chains, continued) by default. Under a "
                                     "reliable cross-fitted model image rows rank without the GEX rank "
                                     "(image_gex_rank), so the members enter the flags only through evidence first "
                                     "and the relabel suggestions; two chains give the same flags as eight at about "
                                     "three quarters of the stage's time (benchmarks/image_time.py, variants "
                                     "chains2 and chains8; benchmarks/suggest_sources.py --rules --image-chains). "
                                     "None: chains. Flat features are not affected.")
    image_gex_rank: bool = Field(False, description="Image rows (c, h, w) under a reliable cross-fitted model: "
                                 "whether the rank scores keep the GEX rank. False (the default) ranks 'gex+oos+aum' "
                                 "as 'oos+aum' and 'gex+oos' as 'oos' there (the summary's score names the one "
                                 "used); the exact GEX score is still computed and published as gex_influence. On "
                                 "the default CNN the cross-fitted loss and θ*'s margins alone rank flipped images "
                                 "higher than with the GEX rank, and a CNN retrained on the cleaned images does at "
                                 "least as well (benchmarks/inverted_gex.py, benchmarks/downstream_images.py "
                                 "--candidate-score). True keeps the GEX rank. Flat features, text and runs with a "
                                 "weak cross-fitted model are not affected.")
    cnn_blocks: int = Field(2, ge=1, le=5, description="Conv blocks of the default CNN (model 'auto' or 'cnn' on "
                            "image rows; engine.models.cnn), for θ* and the cross-fitted halves (and the baselines "
                            "the benchmarks build beside them). 3 adds a block after a second pooling (about 18 "
                            "pixels per feature instead of 10): it was measured on digits and procedural shapes "
                            "and not adopted, since on 800 noisy shape images the halves stayed weak "
                            "(benchmarks/image_time.py, variant cnn3). Flat features (the MLP) are not affected.")
    image_aux_batch_size: int | None = Field(None, ge=1, description="Image rows (c, h, w): the cross-fitted "
                                             "halves' minibatch size, at the same epochs (a smaller batch takes "
                                             "more SGD steps per epoch; measured at 32 in "
                                             "benchmarks/aux_recipe_probe.py). None: FitConfig.batch_size. Flat "
                                             "features are not affected.")
    estimate_count: Literal["confident_joint", "both"] = Field(
        "both", description="How the 'estimate' threshold counts label errors when the cross-fitted model is "
        "reliable: 'both' (the rows cleanlab's find_label_issues flags with filter_by='both' on its "
        "probabilities) or 'confident_joint' (the off-diagonal of their confident joint, which under-counts "
        "where the model is strong). 'both' is the default since it was measured through the public path and "
        "downstream on flat and image data (benchmarks/RESULTS.md); on weak features it flags more correct "
        "labels. A weak model's count is the midpoint rule either way (decisions.estimate).")
    image_eval_batch_size: int | None = Field(128, ge=1, description="Rows per forward pass of a CPU model on image "
                                              "rows (c, h, w), instead of eval_batch_size: a CNN's forward pass over "
                                              "thousands of images at once is several times slower per row on a CPU "
                                              "(benchmarks/image_time.py measures it). None: eval_batch_size. Flat "
                                              "features and CUDA models always use eval_batch_size.")
    probe_chains: int = Field(2, ge=1, description="Chains per grid rate probed by ft_lr='auto' (continued as members).")
    probe_cycles: int = Field(1, ge=1, description="Cycles each probe chain runs before the rate is chosen (raised "
                              "to 2 when a single chain is probed); the chosen rate's probe chains are then continued, "
                              "not retrained.")
    batch_size: int = Field(128, ge=1, description="Minibatch size of member training.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum of member training.")
    weight_decay: float = Field(5e-4, ge=0, description="Weight decay of member training.")
    tau: float = Field(0.05, ge=0, description="Floor of the reference loss: D = L - max(b, tau).")
    score: str = Field("gex+oos+aum", description="The ranking reported as 'score' and thresholded: 'gex' (the exact "
                       "self-influence), 'gex-trimmed', 'member-loss', 'gex+oos', 'gex+aum' or 'gex+oos+aum' (mean percentile "
                       "rank of trimmed GEX, the cross-fitted out-of-sample loss and θ*'s training margins; see "
                       "influence_stage.engine.scores), or 'oos' / 'oos+aum' (the same without GEX: what 'gex+oos' / "
                       "'gex+oos+aum' rank by when the GEX score reads inverted against the reliable cross-fitted "
                       "model, engine.gex.GEXAgreement). The exact GEX score is always published as gex_influence.")
    trim: int = Field(1, ge=1, description="Members left out per row by 'gex-trimmed' and the rank scores: each row's "
                      "k largest squared deviations (robust to one member spiking on a row), at most members - 2. 'gex' never "
                      "trims.")
    eval_batch_size: int = Field(4096, ge=1, description="Rows per forward pass when computing losses.")
    member_chunk: int = Field(16, ge=1, description="Members evaluated together in one vmapped pass.")
    seed: int = Field(0, description="Seed of chains, batch order and the held-out split.")
    device: Literal["cpu", "cuda", "auto"] = Field(
        "cpu", description="Where torch models train and evaluate: 'cpu', 'cuda' (an error when no CUDA device is "
        "visible) or 'auto' (CUDA when available, else CPU). Scores on CUDA equal those on CPU only up to float "
        "rounding, so the device is part of the cache key.")

    @field_validator("score")
    @classmethod
    def _known_score(cls, v: str) -> str:
        from influence_stage.engine.scores import check_score_name  # the engine's list; imported on use

        return check_score_name(v)  # lists the valid names

    @field_validator("lr_grid")
    @classmethod
    def _grid_sorted_positive(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) < 2 or any(x <= 0 for x in v) or list(v) != sorted(v):
            raise ValueError("lr_grid must hold at least 2 positive rates in increasing order")
        return v

    @field_validator("image_lr_grid")
    @classmethod
    def _image_grid_sorted_positive(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return None if v is None else cls._grid_sorted_positive(v)

    @model_validator(mode="after")
    def _enough_members(self) -> "GEXConfig":
        if self.chains * self.cycles < 2:
            raise ValueError(f"GEX needs at least 2 members; chains × cycles = {self.chains} × {self.cycles}. "
                             "Raise chains or cycles.")
        if self.ft_lr == "auto" and min(self.probe_chains, self.chains) * self.cycles < 2:
            raise ValueError("ft_lr='auto' probes need at least 2 members per rate; raise probe_chains or cycles.")
        return self

    @property
    def n_members(self) -> int:
        """``chains × cycles``: the members of a run on flat rows (image rows may use ``image_chains``:
        ``engine.members.member_chains``)."""
        return self.chains * self.cycles

    @property
    def probe_cycle_count(self) -> int:
        """Cycles each probe chain runs: ``probe_cycles``, raised so a rate gets at least 2 members
        (one probe chain runs 2 cycles), never more than ``cycles``."""
        chains = min(self.probe_chains, self.chains)
        return min(self.cycles, max(self.probe_cycles, -(-2 // chains)))

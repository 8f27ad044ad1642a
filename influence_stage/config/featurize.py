"""The featurizers' settings (the parts that are not learned from the data): a section of the stage config.

Pure pydantic, no numpy / torch / datasets, so reading a configuration stays cheap.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, StrictBool, field_validator

ON_DISK_ABOVE_BYTES = 1 << 30
"""Default ``FeaturizeConfig.on_disk_above``: under ``on_disk="auto"``, image features whose float32
matrix would exceed 1 GiB are written to disk; a quarter or less of this machine's usual memory, and
past the size where one copy of the matrix next to the model and its members stops being cheap."""


class FeaturizeConfig(BaseModel):
    """Settings of the featurizers (the parts that are not learned from the data)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_size: tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="(height, width) every image is resized to. None: the images' own size when they "
        "all share one, else 32x32 (DEFAULT_IMAGE_SIZE).")
    text_max_features: int = Field(2048, ge=1, description="Vocabulary size of the TF-IDF text featurizer.")
    text_components: int = Field(
        128, ge=1, description="Output width of the text featurizer's TruncatedSVD (capped at vocabulary - 1 "
        "and rows - 1).")
    text_model: str | None = Field(
        None, description="Local folder of a sentence-transformers model used instead of TF-IDF + SVD "
        "(needs the optional package sentence-transformers).")
    featurizer: str | None = Field(
        None, description="A featurizer registered in FEATURIZER_REGISTRY (influence_stage.data.featurize) to use "
        "instead of the default for the feature columns' kind (tabular, image, text); it must read columns of "
        "that kind. None: the default.")
    seed: int = Field(0, description="Seed of the randomized SVD of the text featurizer.")
    on_disk: StrictBool | Literal["auto"] = Field(
        "auto", description="Where image features live. False: one (n, c, h, w) float32 array in memory. True: "
        "an Arrow dataset on disk (data.feature_store.FeatureStore), written in row blocks and read back in "
        "batches for training and evaluation, so memory does not grow with the image matrix; the values are "
        "bit-identical to the in-memory ones. 'auto': on disk when the float32 matrix (n*c*h*w*4 bytes) would "
        "exceed on_disk_above. The store's folder is the store_dir given to featurize / featurize_step, else a "
        "temporary folder (under $TMPDIR) removed when the features are garbage-collected. Tabular and text "
        "features are always in memory (True is refused for them).")
    on_disk_above: int = Field(
        ON_DISK_ABOVE_BYTES, ge=1, description="Size in bytes of the float32 image matrix above which "
        "on_disk='auto' writes it to disk (default 1 GiB, 2**30).")

    @field_validator("featurizer")
    @classmethod
    def _registered(cls, name: str | None) -> str | None:
        # imported here: the registry lives with the featurizers (numpy, datasets), read only when a name is set
        if name is not None:
            from influence_stage.data.featurize import FEATURIZER_REGISTRY

            if name not in FEATURIZER_REGISTRY.names():
                raise ValueError(f"unknown featurizer {name!r}; registered: {list(FEATURIZER_REGISTRY.names())}")
        return name


__all__ = ["FeaturizeConfig", "ON_DISK_ABOVE_BYTES"]

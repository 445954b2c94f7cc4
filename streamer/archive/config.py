"""The archive's settings: `stream.archive:` in the YAML config. Off by default: frames may show people."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeepPolicy(_Section):
    """Which frames of a camera are kept. A frame is kept when any rule says so; every rule can be off."""

    every_n: Optional[int] = Field(None, ge=1, le=10**9, description="keep every Nth frame (1: every frame)")
    every_s: Optional[float] = Field(60.0, gt=0, le=86_400, description="keep a frame at least every this many s")
    out_of_spec: bool = Field(True, description="keep frames in which an item was found out of spec (the tally)")
    rejects: bool = Field(True, description="keep frames a reject message (persense/<camera>/reject) names")
    quality_below: Optional[float] = Field(
        0.5, ge=-1, le=1, description="keep frames whose match quality is below this (null: off); frames with no "
        "object (quality 0) are kept only for another rule")
    count_jump: Optional[int] = Field(
        None, ge=1, le=100_000, description="keep a frame whose count differs from the previous frame's by more")
    before_s: float = Field(2.0, ge=0, le=60, description="with an event (out of spec, reject, low quality, jump, "
                            "mark), keep this many seconds of frames before it too")
    after_s: float = Field(2.0, ge=0, le=60, description="... and this many seconds after it")
    max_context_frames: int = Field(
        64, ge=0, le=1024, description="at most this many frames held for `before_s` (each is a reference to a "
        "frame already in memory; 64 frames of 640x480 are ~60 MB)")


class ArchiveConfig(_Section):
    enabled: bool = Field(False, description="keep frames and results on disk (off by default: frames may show "
                          "people; see docs/archive.md's privacy note)")
    path: Path = Field(Path("persense-archive"), description="the archive's directory (made where missing)")
    image_format: Literal["jpeg", "png"] = Field("jpeg", description="how frames are stored")
    jpeg_quality: int = Field(90, ge=1, le=100)
    max_bytes: int = Field(2 * 1024**3, ge=1024 * 1024, le=2**50,
                           description="the archive never takes more than this on disk; the oldest frames go first")
    max_age_s: Optional[float] = Field(7 * 86_400.0, gt=0, description="frames older than this are removed "
                                       "(null: kept until the size limit)")
    queue_size: int = Field(32, ge=1, le=10_000, description="frames waiting for the writer; more are dropped "
                            "(counted in persense_archive_dropped_total)")
    fsync: bool = Field(True, description="fsync each file before it is indexed (a crash loses at most the frames "
                        "in the writer's queue)")
    policy: KeepPolicy = Field(default_factory=KeepPolicy, description="what is kept, for every camera")
    cameras: dict[str, KeepPolicy] = Field(default_factory=dict, description="a camera's own policy")

    @model_validator(mode="after")
    def _bounded_cameras(self):
        if len(self.cameras) > 64:
            raise ValueError("archive.cameras: at most 64 cameras")
        return self

    def policy_of(self, camera: str) -> KeepPolicy:
        return self.cameras.get(camera, self.policy)

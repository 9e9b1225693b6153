"""The SynthVTR generator's configuration (a frozen dataclass; load files with ``common.config.from_dict``)."""
from __future__ import annotations

from dataclasses import dataclass

# Bumped whenever the same config would generate different data.
VERSION = "synthvtr-3"  # 3: a whole-frame region carries the scene (scene_region)


@dataclass(frozen=True)
class SynthConfig:
    videos: int = 2000                       # all splits together
    captions_per_video: int = 5
    seed: int = 0
    noise: float = 0.15                      # std of Gaussian noise added to region and frame features
    miss_rate: float = 0.05                  # probability that the detector misses an entity in a frame
    distractors: int = 2                     # at least this many distractor regions per frame
    regions_per_frame: int = 8               # fixed; visible entities first, the rest distractors (shuffled)
    scene_region: bool = True                # one region per frame is the whole frame, which shows the scene
    events_per_video: tuple[int, int] = (1, 3)
    frames: tuple[int, int] = (8, 40)        # inclusive range of frames per video
    frame_dim: int = 256                     # 2048 for ResNet-like sizes
    region_dim: int = 256
    val_fraction: float = 0.1
    test_fraction: float = 0.1               # tst: combinations may or may not occur in training
    unseen_fraction: float = 0.1             # tst_unseen: every video has an event triple never seen in training
    heldout_triples: float = 0.1             # fraction of transitive (action, agent, patient) triples held out

    def __post_init__(self) -> None:
        lo, hi = self.events_per_video
        if not 1 <= lo <= hi <= 3:
            raise ValueError(f"events_per_video must satisfy 1 <= min <= max <= 3, got {self.events_per_video}")
        f_lo, f_hi = self.frames
        if not 2 * hi <= f_lo <= f_hi:
            raise ValueError(f"frames must satisfy {2 * hi} <= min <= max (two frames per event), got {self.frames}")
        if self.captions_per_video < 1:
            raise ValueError(f"captions_per_video must be >= 1, got {self.captions_per_video}")
        if self.noise < 0 or not 0 <= self.miss_rate < 1:
            raise ValueError(f"noise must be >= 0 and miss_rate in [0, 1), got {self.noise}, {self.miss_rate}")
        if self.distractors < 0 or self.regions_per_frame < self.distractors + 2 + int(self.scene_region):
            raise ValueError(
                f"regions_per_frame ({self.regions_per_frame}) must hold the two entities of an event plus "
                f"distractors ({self.distractors})" + (" and the whole-frame region" if self.scene_region else "")
            )
        if self.frame_dim < 1 or self.region_dim < 1:
            raise ValueError(f"frame_dim and region_dim must be >= 1, got {self.frame_dim}, {self.region_dim}")
        fractions = (self.val_fraction, self.test_fraction, self.unseen_fraction)
        if min(fractions) < 0 or sum(fractions) >= 1:
            raise ValueError(f"split fractions must be >= 0 and leave videos for training, got {fractions}")
        if not 0 <= self.heldout_triples < 1:
            raise ValueError(f"heldout_triples must be in [0, 1), got {self.heldout_triples}")
        if self.unseen_fraction > 0 and self.heldout_triples == 0:
            raise ValueError("unseen_fraction > 0 needs heldout_triples > 0 (unseen videos use held-out triples)")
        self.split_sizes()

    def split_sizes(self) -> dict[str, int]:
        """Videos per split; every non-empty fraction gets at least one video."""
        sizes = self._sizes(self.videos)
        if sizes["trn"] < 1:
            needed = next(n for n in range(self.videos + 1, 1 << 31) if self._sizes(n)["trn"] >= 1)
            named = [name for name, n in sizes.items() if name == "trn" or n > 0]
            raise ValueError(f"videos must be at least {needed} to give every split ({', '.join(named)}) a video "
                             f"with these split fractions, got {self.videos}")
        return sizes

    def _sizes(self, videos: int) -> dict[str, int]:
        sizes = {}
        for name, frac in (("val", self.val_fraction), ("tst", self.test_fraction),
                           ("tst_unseen", self.unseen_fraction)):
            sizes[name] = max(1, int(round(frac * videos))) if frac > 0 else 0
        trn = videos - sum(sizes.values())
        return {"trn": trn, **sizes}

"""Detector-like region features and CNN-like frame features of a video, from its events.

The renderer is a fixed random network drawn from the seed (nothing is learned):

* every entity type has a prototype; each video draws its own instance of it (prototype + jitter);
* an entity's **region** in frame ``t`` is ``tanh(W2 relu(W1 x))`` of ``x = [instance, role, action, motion]``:
  the role (agent, patient or idle), the action it takes part in, and its motion over consecutive frames
  (displacement since the previous frame plus an action- and role-specific oscillation). The non-linearity
  binds them, so "a dog chases a cat" and "a cat chases a dog" give different regions, not a reshuffled sum;
* distractor regions (scene furniture, never mentioned in captions) go through the same network;
  regions are shuffled in every frame, and the detector misses an entity with ``miss_rate``;
* with ``scene_region`` one region of every frame is the whole frame (as detectors propose one): its input is
  the video's instance of the scene's look, so region-only models see the background as a detector's do;
* the **frame** feature is ``tanh(F [mean_r relu(U r), max_r relu(U r), scene])``: a non-linear pooling of
  the regions (each of which already binds identity, role and motion) plus the scene.

Gaussian noise (``noise``) is added to both. All randomness comes from ``numpy.random.Generator`` streams
seeded by ``(seed, purpose, video index)``, so a video's features do not depend on the others.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.synth.config import SynthConfig
from training.synth.world import VideoPlan, World

ENTITY_DIM, ROLE_DIM, ACTION_DIM, MOTION_DIM, SCENE_DIM = 32, 8, 16, 6, 16
HIDDEN = 256
AGENT, PATIENT, IDLE = 0, 1, 2
DISTRACTORS_PER_SCENE, SHARED_DISTRACTORS = 4, 8
ROLE_BINDING = 1.0         # strength of the role-specific transform of an entity's appearance
INSTANCE_JITTER = 0.35      # per-video variation of an entity's appearance, relative to the prototype
IDLE_VISIBLE = 0.5          # probability that a cast member outside the current event is in view


@dataclass(frozen=True)
class RenderedVideo:
    frames: np.ndarray          # float32 [T, frame_dim]
    regions: np.ndarray         # float32 [T, regions_per_frame, region_dim]
    segments: tuple[tuple[int, int], ...]  # [start, end) frames of each event


def _linear(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    return rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)


class Renderer:
    """The fixed random network of a seed and dimensions; ``render`` turns a video plan into features."""

    def __init__(self, world: World, config: SynthConfig):
        self.world = world
        self.config = config
        rng = np.random.default_rng([config.seed, 1])
        n_ent, n_act, n_scene = len(world.entity_names), len(world.action_names), len(world.scene_names)
        self.entity_proto = rng.standard_normal((n_ent, ENTITY_DIM))
        self.distractor_proto = rng.standard_normal((n_scene * DISTRACTORS_PER_SCENE + SHARED_DISTRACTORS,
                                                     ENTITY_DIM))
        self.role_emb = 1.5 * rng.standard_normal((3, ROLE_DIM))
        # how taking part as agent / patient changes an entity's appearance (pose): a random linear map per role
        self.role_pose = ROLE_BINDING * rng.standard_normal((2, ENTITY_DIM, ENTITY_DIM)) / np.sqrt(ENTITY_DIM)
        self.action_emb = rng.standard_normal((n_act, ACTION_DIM))
        self.scene_emb = rng.standard_normal((n_scene, SCENE_DIM))
        # per (action, role in {agent, patient}): mean velocity per frame and oscillation frequency
        self.velocity = 0.03 * rng.standard_normal((n_act, 2, 2))
        self.frequency = rng.uniform(0.3, 1.6, size=(n_act, 2))
        in_dim = ENTITY_DIM + ROLE_DIM + ACTION_DIM + MOTION_DIM
        self.w1 = _linear(rng, in_dim, HIDDEN)
        self.b1 = 0.5 * rng.standard_normal(HIDDEN)
        self.w2 = 1.2 * _linear(rng, HIDDEN, config.region_dim)
        self.u = _linear(rng, config.region_dim, HIDDEN)
        self.c = 0.5 * rng.standard_normal(HIDDEN)
        self.f = 1.2 * _linear(rng, 2 * HIDDEN + SCENE_DIM, config.frame_dim)
        # drawn last, so that every weight above is the one of the generator without a whole-frame region
        self.scene_look = rng.standard_normal((n_scene, ENTITY_DIM))
        self.entity_index = {name: i for i, name in enumerate(world.entity_names)}
        self.action_index = {name: i for i, name in enumerate(world.action_names)}
        self.scene_index = {name: i for i, name in enumerate(world.scene_names)}

    def segments(self, rng: np.random.Generator, num_frames: int, num_events: int) -> tuple[tuple[int, int], ...]:
        """Consecutive frame ranges, one per event, each at least two frames long."""
        extra = num_frames - 2 * num_events
        lengths = 2 + np.floor(rng.dirichlet(np.ones(num_events)) * extra).astype(int)
        lengths[-1] += num_frames - lengths.sum()
        ends = np.cumsum(lengths)
        return tuple((int(e - n), int(e)) for e, n in zip(ends, lengths))

    def render(self, plan: VideoPlan, rng: np.random.Generator) -> RenderedVideo:
        cfg = self.config
        num_frames = int(rng.integers(cfg.frames[0], cfg.frames[1] + 1))
        segments = self.segments(rng, num_frames, len(plan.events))
        cast = plan.cast
        scene = self.scene_index[plan.scene]
        instances = self.entity_proto[[self.entity_index[e] for e in cast]]
        instances = instances + INSTANCE_JITTER * rng.standard_normal(instances.shape)
        positions = rng.uniform(0, 1, size=(len(cast), 2))
        phases = rng.uniform(0, 2 * np.pi, size=len(cast))
        pool = np.concatenate([np.arange(scene * DISTRACTORS_PER_SCENE, (scene + 1) * DISTRACTORS_PER_SCENE),
                               len(self.distractor_proto) - SHARED_DISTRACTORS + np.arange(SHARED_DISTRACTORS)])
        distractor_ids = rng.choice(pool, size=cfg.regions_per_frame, replace=False)
        distractors = self.distractor_proto[distractor_ids]
        distractors = distractors + INSTANCE_JITTER * rng.standard_normal(distractors.shape)
        distractor_pos = rng.uniform(0, 1, size=(cfg.regions_per_frame, 2))
        whole_frame = None
        if cfg.scene_region:  # the whole frame: the scene's look, centred, still, taking part in nothing
            look = self.scene_look[scene] + INSTANCE_JITTER * rng.standard_normal(ENTITY_DIM)
            whole_frame = np.concatenate([look, self.role_emb[IDLE], np.zeros(ACTION_DIM),
                                          np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0])])
        entity_slots = cfg.regions_per_frame - cfg.distractors - int(whole_frame is not None)

        region_in = np.zeros((num_frames, cfg.regions_per_frame, self.w1.shape[0]))
        for k, (start, end) in enumerate(segments):
            action, agent, patient = plan.events[k]
            a = self.action_index[action]
            roles = {agent: AGENT}
            if patient is not None:
                roles[patient] = PATIENT
            idle_visible = {e for e in cast if e not in roles and rng.random() < IDLE_VISIBLE}
            for t in range(start, end):
                rows = []
                for i, entity in enumerate(cast):
                    role = roles.get(entity, IDLE)
                    step = (self.velocity[a, role] if role != IDLE else 0.0) + 0.01 * rng.standard_normal(2)
                    positions[i] = np.clip(positions[i] + step, 0.0, 1.0)
                    if (role == IDLE and entity not in idle_visible) or rng.random() < cfg.miss_rate:
                        continue
                    freq = self.frequency[a, role] if role != IDLE else 0.0
                    motion = np.array([10 * step[0], 10 * step[1], np.sin(freq * t + phases[i]),
                                       np.cos(freq * t + phases[i]), positions[i, 0] - 0.5, positions[i, 1] - 0.5])
                    act = self.action_emb[a] if role != IDLE else np.zeros(ACTION_DIM)
                    look = instances[i] + (self.role_pose[role] @ instances[i] if role != IDLE else 0.0)
                    rows.append((role == IDLE, np.concatenate([look, self.role_emb[role], act, motion])))
                # idle entities beyond the distractor budget are dropped first
                rows = [row for _, row in sorted(rows, key=lambda r: r[0])][:entity_slots]
                if whole_frame is not None:
                    rows.append(whole_frame)
                for j in range(cfg.regions_per_frame - len(rows)):
                    still = np.array([0.0, 0.0, 0.0, 1.0, distractor_pos[j, 0] - 0.5, distractor_pos[j, 1] - 0.5])
                    rows.append(np.concatenate([distractors[j], self.role_emb[IDLE], np.zeros(ACTION_DIM), still]))
                region_in[t] = np.stack(rows)[rng.permutation(cfg.regions_per_frame)]

        hidden = np.maximum(region_in @ self.w1 + self.b1, 0.0)
        regions = np.tanh(hidden @ self.w2)
        regions += cfg.noise * rng.standard_normal(regions.shape)
        u = np.maximum(regions @ self.u + self.c, 0.0)
        scene_vec = self.scene_emb[scene] + INSTANCE_JITTER * rng.standard_normal(SCENE_DIM)
        pooled = np.concatenate([u.mean(axis=1), u.max(axis=1),
                                 np.broadcast_to(scene_vec, (num_frames, SCENE_DIM))], axis=1)
        frames = np.tanh(pooled @ self.f)
        frames += cfg.noise * rng.standard_normal(frames.shape)
        return RenderedVideo(frames=frames.astype(np.float32), regions=regions.astype(np.float32),
                             segments=segments)

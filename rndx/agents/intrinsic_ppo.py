"""PPO with an intrinsic reward stream (RND, RDD), done as the RND paper does it.

Three SB3 classes are extended, as sb3-contrib's RecurrentPPO does for its maths:

* :class:`DualValuePolicy`: the actor-critic with TWO value heads on the value trunk,
  V_ext and V_int; the optimiser is rebuilt so it covers the new head.
* :class:`DualRolloutBuffer`: stores both reward streams and runs two GAEs:

      A_ext: episodic,     gamma_ext, next-non-terminal = 1 - episode_start
      A_int: non-episodic, gamma_int, next-non-terminal = 1 always
      A    = c_ext * A_ext + c_int * A_int

* :class:`IntrinsicPPO`: computes r_int on the NEXT observation of every transition,
  normalises it by the running std of the per-env discounted intrinsic return, trains the
  predictor inside ``train()`` on each minibatch, and fits both value heads.

Burda et al. 2018 (arXiv 1810.12894): c_ext = 2, c_int = 1, gamma_ext = 0.999,
gamma_int = 0.99. Settings and known bugs avoided: docs/methods.md (RND).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym
import numba
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from rndx.intrinsic import (
    CoefSchedule,
    InputSelector,
    IntrinsicModule,
    intrinsic_class,
    intrinsic_kind,
)
from rndx.utils.checks import finite_number, whole_number


class DualValuePolicy(ActorCriticPolicy):
    """ActorCriticPolicy whose value net outputs (V_ext, V_int): shape (batch, 2)."""

    def _build(self, lr_schedule) -> None:  # noqa: ANN001
        super()._build(lr_schedule)
        self.value_net = th.nn.Linear(self.mlp_extractor.latent_dim_vf, 2)
        if self.ortho_init:
            th.nn.init.orthogonal_(self.value_net.weight, gain=1.0)
            th.nn.init.zeros_(self.value_net.bias)
        # super()._build made the optimiser before this head existed: rebuild it (style.md)
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )


class DualRolloutBufferSamples(NamedTuple):
    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor  # (batch, 2): ext, int
    old_log_prob: th.Tensor
    advantages: th.Tensor  # combined
    returns: th.Tensor  # (batch, 2): ext, int
    intrinsic_x: th.Tensor  # normalised inputs the predictor trains on (0/1 inputs: active ones)
    intrinsic_target: th.Tensor  # the frozen network's output for them


class DualRolloutBuffer(RolloutBuffer):
    """RolloutBuffer with an intrinsic stream. ``rewards``/``values``/``returns`` keep their
    SB3 meaning for the extrinsic stream; ``*_int`` arrays hold the intrinsic one."""

    def __init__(
        self,
        *args: Any,
        gamma_int: float = 0.99,
        ext_coef: float = 2.0,
        int_coef: float = 1.0,
        intrinsic_dim: int = 1,
        target_dim: int = 1,
        **kwargs: Any,
    ):
        self.gamma_int, self.ext_coef, self.int_coef = gamma_int, ext_coef, int_coef
        self.intrinsic_dim, self.target_dim = intrinsic_dim, target_dim
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        shape = (self.buffer_size, self.n_envs)
        self.rewards_int = np.zeros(shape, dtype=np.float32)
        self.values_int = np.zeros(shape, dtype=np.float32)
        self.returns_int = np.zeros(shape, dtype=np.float32)
        self.advantages_ext = np.zeros(shape, dtype=np.float32)
        self.advantages_int = np.zeros(shape, dtype=np.float32)
        self.intrinsic_inputs = np.zeros((*shape, self.intrinsic_dim), dtype=np.float32)
        # set by collect_rollouts once the rollout is complete (module-prepared inputs and the
        # frozen network's outputs); None until then, so a buffer used before fails loudly
        self.intrinsic_x: np.ndarray | None = None
        self.intrinsic_target: np.ndarray | None = None
        self._flat: dict[str, th.Tensor] | None = None  # the flattened rollout as tensors
        super().reset()

    def add(
        self,
        obs,
        action,
        reward,
        episode_start,
        value,
        log_prob,  # noqa: ANN001
        intrinsic_input: np.ndarray | None = None,
    ) -> None:
        """As SB3's add; ``value`` is (n_envs, 2)."""
        self.values_int[self.pos] = value[:, 1].cpu().numpy()  # the assignment copies
        if intrinsic_input is not None:
            self.intrinsic_inputs[self.pos] = intrinsic_input
        super().add(obs, action, reward, episode_start, value[:, 0], log_prob)

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        """Two GAEs; ``last_values`` (n_envs, 2) are V(s_T) for the observation after the
        rollout. The intrinsic stream ignores episode ends (non-episodic)."""
        last = last_values.clone().cpu().numpy()
        self.advantages_ext = gae(
            self.rewards,
            self.values,
            self.episode_starts,
            last[:, 0],
            dones,
            self.gamma,
            self.gae_lambda,
            episodic=True,
        )
        self.advantages_int = gae(
            self.rewards_int,
            self.values_int,
            self.episode_starts,
            last[:, 1],
            dones,
            self.gamma_int,
            self.gae_lambda,
            episodic=False,
        )
        self.returns = self.advantages_ext + self.values
        self.returns_int = self.advantages_int + self.values_int
        self.advantages = self.ext_coef * self.advantages_ext + self.int_coef * self.advantages_int

    def get(self, batch_size: int | None = None):
        if not self.generator_ready:
            for name in ("values_int", "returns_int", "intrinsic_x", "intrinsic_target"):
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
        yield from super().get(batch_size)

    def _flat_tensors(self) -> dict[str, th.Tensor]:
        """The flattened rollout as tensors, made once per rollout (after ``get`` flattened
        the arrays). A minibatch is then one ``index_select`` per field instead of SB3's numpy
        fancy index + copy into a new tensor, per field, minibatch and epoch."""
        if self._flat is None:

            def pair(ext: np.ndarray, int_: np.ndarray) -> np.ndarray:
                return np.stack([ext.reshape(-1), int_.reshape(-1)], axis=1)

            arrays = {
                "observations": self.observations,
                "actions": self.actions,
                "old_values": pair(self.values, self.values_int),
                "old_log_prob": self.log_probs.reshape(-1),
                "advantages": self.advantages.reshape(-1),
                "returns": pair(self.returns, self.returns_int),
                "intrinsic_x": self.intrinsic_x,
                "intrinsic_target": self.intrinsic_target,
            }
            self._flat = {k: self.to_torch(np.ascontiguousarray(v)) for k, v in arrays.items()}
        return self._flat

    def _get_samples(self, batch_inds: np.ndarray, env=None) -> DualRolloutBufferSamples:  # noqa: ANN001
        flat = self._flat_tensors()
        idx = th.as_tensor(batch_inds, device=self.device)
        return DualRolloutBufferSamples(
            *(flat[name].index_select(0, idx) for name in DualRolloutBufferSamples._fields)
        )


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    last_dones: np.ndarray,
    gamma: float,
    lam: float,
    episodic: bool,
) -> np.ndarray:
    """Generalised advantage estimation over (T, n_envs) arrays, in float32 like the
    rollout buffer.

        delta_t = r_t + gamma * V_{t+1} * nonterminal_{t+1} - V_t
        A_t     = delta_t + gamma * lam * nonterminal_{t+1} * A_{t+1}

    with nonterminal_{t+1} = 1 - (episode starts at t+1) when ``episodic``, else 1: the
    non-episodic stream bootstraps through episode ends into the next episode's start.
    """

    def f32(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float32)

    rewards, values, episode_starts = f32(rewards), f32(values), f32(episode_starts)
    adv = np.empty_like(rewards)
    _gae_kernel(
        rewards,
        values,
        episode_starts,
        f32(np.asarray(last_values).reshape(-1)),
        f32(1.0 - np.asarray(last_dones, dtype=np.float32).reshape(-1)),
        np.float32(gamma),
        np.float32(gamma * lam),
        bool(episodic),
        adv,
    )
    return adv


@numba.njit(cache=True)
def _gae_kernel(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    last_nonterminal: np.ndarray,
    gamma: np.float32,
    gamma_lam: np.float32,
    episodic: bool,
    out: np.ndarray,
) -> None:
    """The GAE recursion, compiled: the float32 operations of the numpy loop it replaced,
    in the same order (r + gamma * V' * nt - V, then delta + gamma_lam * nt * A'), so the
    advantages are bit-identical to it, in a fraction of the time (two GAEs per rollout)."""
    steps, n_envs = rewards.shape
    one = np.float32(1.0)
    for e in range(n_envs):
        last_gae = np.float32(0.0)
        for t in range(steps - 1, -1, -1):
            if t == steps - 1:
                nonterminal, next_value = last_nonterminal[e], last_values[e]
            else:
                nonterminal, next_value = one - episode_starts[t + 1, e], values[t + 1, e]
            if not episodic:
                nonterminal = one
            delta = rewards[t, e] + gamma * next_value * nonterminal - values[t, e]
            last_gae = delta + gamma_lam * nonterminal * last_gae
            out[t, e] = last_gae


def floor_extent(env: VecEnv | None) -> tuple[float, float] | None:
    """(width, height) in m of the warehouse floor under ``env`` (the rndx AGV envs, batched
    or single), or None for any other env."""
    if env is None:
        return None
    core = getattr(env.unwrapped, "core", None)
    if core is None:
        try:
            core = env.get_attr("core", [0])[0]
        except AttributeError:
            return None
    world = getattr(core, "world", None)
    return None if world is None else tuple(float(v) for v in world.layout.size)


def check_observation_space(space: spaces.Space | None) -> None:
    """Raise unless ``space`` is a Box (any shape: the module takes it flattened); None (no
    env yet) passes.

    :raises ValueError: naming the space and the wrapper that flattens it.
    """
    if space is not None and not isinstance(space, spaces.Box):
        raise ValueError(
            f"IntrinsicPPO needs a flat or n-D Box observation space; got {space}: flatten it "
            "with gymnasium.wrappers.FlattenObservation (rndx.envs.make_sb3_vec_env does this "
            "for Dict spaces)"
        )


def dual_value_policy(policy: str | type[ActorCriticPolicy]) -> type[DualValuePolicy]:
    """The policy class IntrinsicPPO builds: ``"MlpPolicy"`` (what a config names, SB3's
    default) means :class:`DualValuePolicy`; a subclass of it passes through.

    :raises ValueError: for any other name or class (their value net has one output).
    """
    if policy == "MlpPolicy":
        return DualValuePolicy
    if isinstance(policy, type) and issubclass(policy, DualValuePolicy):
        return policy
    got = policy.__name__ if isinstance(policy, type) else repr(policy)
    raise ValueError(
        f"IntrinsicPPO's policy must be 'MlpPolicy' (rndx's DualValuePolicy: V_ext and V_int "
        f"heads) or a subclass of DualValuePolicy; got {got}"
    )


class IntrinsicPPO(PPO):
    """PPO + an intrinsic reward module with its own value head and GAE.

    :param policy: ``"MlpPolicy"`` (:class:`DualValuePolicy`) or a subclass of it; ``env``
        must be an SB3 VecEnv (or env id) with a Box observation space (an n-D one is
        flattened for the module), and ``policy_kwargs.activation_fn`` may be a name
        (``"relu"``: :data:`rndx.agents.ACTIVATIONS`) as in a config
    :param intrinsic: ``"rnd"``, ``"rdd"``, or your own :class:`~rndx.intrinsic.IntrinsicModule`
        subclass as ``"package.module:Class"`` (or the class itself, stored by that path so
        that a saved agent loads wherever the module imports)
    :param intrinsic_kwargs: constructor arguments of the module (hidden, output_dim,
        learning_rate, update_proportion, sigma for RDD ...)
    :param intrinsic_input: ``"obs"``, ``"pose"`` (``info["pose"]``), ``"pose_tiles"`` (its
        x, y tile-coded on the env's floor) or observation indices
    :param input_kwargs: ``tile_size`` (m) and ``tilings`` of ``"pose_tiles"`` (defaults 1, 2)
    :param gamma_int: discount of the intrinsic stream (RND: 0.99; ``gamma`` is gamma_ext,
        default 0.999 as in RND, not SB3's 0.99)
    :param ext_coef: c_ext of the combined advantage (RND: 2)
    :param int_coef: c_int at the start of training (RND: 1)
    :param int_coef_schedule: ``constant`` or ``linear`` (to ``int_coef_end``)
    :param init_steps: random-action steps per env that initialise the input normalisation
        before the first rollout (not counted as training steps)
    """

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy] = DualValuePolicy,
        env: VecEnv | str | None = None,
        *,
        intrinsic: str | type[IntrinsicModule] = "rnd",
        intrinsic_kwargs: dict[str, Any] | None = None,
        intrinsic_input: str | list[int] = "obs",
        input_kwargs: dict[str, Any] | None = None,
        gamma_int: float = 0.99,
        ext_coef: float = 2.0,
        int_coef: float = 1.0,
        int_coef_schedule: str = "constant",
        int_coef_end: float = 0.0,
        init_steps: int = 50,
        _init_setup_model: bool = True,
        **kwargs: Any,
    ):
        if isinstance(env, gym.vector.VectorEnv):
            spec = getattr(env, "spec", None)
            env_id = spec.id if spec is not None else "<env id>"
            raise TypeError(
                f"IntrinsicPPO got a Gymnasium vector env ({type(env).__name__}); SB3 needs its "
                f"own VecEnv: use rndx.envs.make_sb3_vec_env({env_id!r}, {env.num_envs}, seed=0) "
                "or stable_baselines3.common.env_util.make_vec_env"
            )
        # the space before the policy: a Dict env (SB3's MultiInputPolicy) is told to flatten
        check_observation_space(getattr(env, "observation_space", None))
        policy = dual_value_policy(policy)
        from rndx.agents import resolve_policy_kwargs  # here: rndx.agents imports this module

        kwargs = resolve_policy_kwargs(kwargs)  # activation_fn by name, as in build_agent
        self.intrinsic_kind = intrinsic_kind(intrinsic)
        intrinsic_class(self.intrinsic_kind)  # an unknown or unimportable module fails here
        self.intrinsic_kwargs = dict(intrinsic_kwargs or {})
        self.intrinsic_input = intrinsic_input
        self.input_kwargs = dict(input_kwargs or {})
        unknown = set(self.input_kwargs) - {"tile_size", "tilings"}
        if unknown:
            raise ValueError(
                f"input_kwargs {sorted(unknown)} unknown; allowed: tile_size, tilings "
                "(for intrinsic_input 'pose_tiles')"
            )
        if self.input_kwargs and intrinsic_input != "pose_tiles":  # would be ignored
            raise ValueError(
                f"input_kwargs {self.input_kwargs} are for intrinsic_input 'pose_tiles'; "
                f"intrinsic_input is {intrinsic_input!r}"
            )
        # the floor's (width, height) for 'pose_tiles': read from the env at the first setup
        # and saved with the agent, so a loaded agent rebuilds the same input without an env
        self.input_extent: tuple[float, float] | None = None
        if not 0.0 <= gamma_int < 1.0:
            raise ValueError(
                f"gamma_int={gamma_int!r} must be in [0, 1): the intrinsic return runs through "
                "episode ends, so it has no horizon but its discount"
            )
        ext_coef = finite_number("ext_coef", ext_coef, 0.0)
        int_coef = finite_number("int_coef", int_coef, 0.0)
        # the linear schedule's end: a negative one would turn the bonus into a penalty
        int_coef_end = finite_number("int_coef_end", int_coef_end, 0.0)
        init_steps = whole_number("init_steps", init_steps, 0)
        self.gamma_int, self.ext_coef, self.int_coef = gamma_int, ext_coef, int_coef
        self.int_coef_schedule = CoefSchedule(int_coef_schedule, int_coef, int_coef_end)
        self.init_steps = init_steps
        self.intrinsic: IntrinsicModule | None = None
        kwargs.setdefault("gamma", 0.999)  # gamma_ext (RND paper); SB3's PPO default is 0.99
        kwargs.setdefault("rollout_buffer_class", DualRolloutBuffer)
        super().__init__(policy, env, _init_setup_model=False, **kwargs)
        if isinstance(env, str):  # SB3 made the env from its id
            check_observation_space(self.observation_space)
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ setup, save/load
    @classmethod
    def load(cls, path: Any, *args: Any, **kwargs: Any) -> IntrinsicPPO:  # type: ignore[override]
        """SB3's ``load``; a missing file is named as given (SB3 tries ``path + '.zip'`` too
        and reported that: ``'model.zip.zip'``)."""
        from pathlib import Path

        if isinstance(path, (str, Path)):
            p = Path(path)
            if not p.exists() and not Path(f"{p}.zip").exists():
                raise FileNotFoundError(f"IntrinsicPPO checkpoint {str(p)!r} not found")
        return super().load(path, *args, **kwargs)

    def _setup_model(self) -> None:
        # seed before the module's networks are drawn (SB3 seeds only inside its own
        # _setup_model, below), so a seeded agent is reproducible whoever builds it
        self.set_random_seed(self.seed)
        if self.intrinsic_input == "pose_tiles" and self.input_extent is None:
            self.input_extent = floor_extent(self.env)
        self.selector = InputSelector(
            self.intrinsic_input, extent=self.input_extent, **self.input_kwargs
        )
        in_dim = self.selector.dim(int(np.prod(self.observation_space.shape)))
        kwargs = {"gamma": self.gamma_int, **self.intrinsic_kwargs}
        if self.selector.binary_active is not None:
            kwargs.setdefault("binary_active", self.selector.binary_active)
        cls = intrinsic_class(self.intrinsic_kind)
        try:
            module = cls(in_dim, **kwargs)
        except ValueError as exc:  # a module setting out of range: say where it is set
            raise ValueError(f"intrinsic_kwargs: {exc}") from None
        self.intrinsic = module.to(self.device)
        target_dim = self.intrinsic.output_dim
        self.rollout_buffer_kwargs = {
            **self.rollout_buffer_kwargs,
            "gamma_int": self.gamma_int,
            "ext_coef": self.ext_coef,
            "int_coef": self.int_coef,
            "intrinsic_dim": in_dim,
            "target_dim": target_dim,
        }
        super()._setup_model()
        self._intrinsic_ready = False

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        names, variables = super()._get_torch_save_params()
        names = names + ["intrinsic"]
        if self.intrinsic is not None and self.intrinsic.optimizer is not None:
            names.append("intrinsic.optimizer")  # a module with nothing to train has none
        return names, variables

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + ["intrinsic", "selector"]

    def set_parameters(self, *args: Any, **kwargs: Any) -> None:
        super().set_parameters(*args, **kwargs)
        # a loaded module has input statistics already: no random-action initialisation
        self._intrinsic_ready = bool(self.intrinsic.obs_rms.count > 1)

    # ------------------------------------------------------------------ rollouts
    def intrinsic_inputs(self, obs: np.ndarray, infos: list[dict] | None = None) -> np.ndarray:
        return self.selector(obs, infos)

    def _step_inputs(self, new_obs: np.ndarray, dones: np.ndarray, infos: list[dict]) -> np.ndarray:
        """Module inputs of one step's transitions, taken from the observation each led to.
        ``info["pose"]`` already is the pose a step ended in, so the pose input skips the
        terminal-observation fix-up it would discard."""
        if self.selector.uses_pose:
            return self.intrinsic_inputs(new_obs, infos)
        return self.intrinsic_inputs(self._real_next_obs(new_obs, dones, infos), infos)

    def _real_next_obs(
        self, new_obs: np.ndarray, dones: np.ndarray, infos: list[dict]
    ) -> np.ndarray:
        """The observation each transition led to: the terminal one at an episode end (the
        env already returned the reset observation there)."""
        nxt = np.array(new_obs, copy=True)
        for i in np.nonzero(dones)[0]:
            if infos[i].get("terminal_observation") is not None:
                nxt[i] = infos[i]["terminal_observation"]
        return nxt

    def _init_input_stats(self, env: VecEnv) -> None:
        """RND initialises the input normalisation from a short random-policy rollout."""
        inputs = []
        for _ in range(self.init_steps):
            actions = np.stack([self.action_space.sample() for _ in range(env.num_envs)])
            new_obs, _, dones, infos = env.step(actions)
            inputs.append(self._step_inputs(new_obs, dones, infos))
            self._last_obs, self._last_episode_starts = new_obs, dones
        if inputs:
            self.intrinsic.update_input_stats(np.concatenate(inputs))
        self._intrinsic_ready = True

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: DualRolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """SB3's loop plus the intrinsic stream (see the module docstring)."""
        assert self._last_obs is not None, "No previous observation was provided"
        if not self._intrinsic_ready:
            self._init_input_stats(env)
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        # progress from the counters of this learn() call (SB3 updates
        # _current_progress_remaining only after the rollout, so it still holds the last call's)
        progress = self.num_timesteps / max(self._total_timesteps, 1)
        rollout_buffer.int_coef = self.int_coef_schedule(progress)
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()
        n_steps = 0
        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)
            with th.no_grad():
                actions, values, log_probs = self.policy(obs_as_tensor(self._last_obs, self.device))
            actions = actions.cpu().numpy()
            clipped = actions
            if isinstance(self.action_space, spaces.Box):
                clipped = (
                    self.policy.unscale_action(actions)
                    if self.policy.squash_output
                    else np.clip(actions, self.action_space.low, self.action_space.high)
                )
            new_obs, rewards, dones, infos = env.step(clipped)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)

            inputs = self._step_inputs(new_obs, dones, infos)
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)
            # time-limit truncation: bootstrap the EXTRINSIC return from V_ext(final obs)
            # (SB3 issue #633); the intrinsic stream never stops at episode ends anyway
            for idx in np.flatnonzero(dones):
                if infos[idx].get("terminal_observation") is not None and infos[idx].get(
                    "TimeLimit.truncated", False
                ):
                    terminal_obs = self.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                    with th.no_grad():
                        rewards[idx] += self.gamma * self.policy.predict_values(terminal_obs)[0, 0]
            rollout_buffer.add(
                self._last_obs,
                actions,
                rewards,
                self._last_episode_starts,
                values,
                log_probs,
                intrinsic_input=inputs,
            )
            self._last_obs, self._last_episode_starts = new_obs, dones
            n_steps += 1

        # r_int(s') for the whole rollout in one batch: the predictor and the input
        # statistics do not change during a rollout, so this equals step-by-step computing
        flat = rollout_buffer.intrinsic_inputs.reshape(-1, rollout_buffer.intrinsic_dim)
        raw_int = self.intrinsic.compute(flat).reshape(n_rollout_steps, env.num_envs)
        rollout_buffer.rewards_int = self.intrinsic.normalize_rewards(raw_int).astype(np.float32)
        # input statistics follow the data after this rollout's bonuses (as CleanRL/RND do);
        # the predictor then trains on inputs normalised with the updated statistics
        self.intrinsic.update_input_stats(flat)
        x, target = self.intrinsic.training_batch(flat)
        shape = (n_rollout_steps, env.num_envs)
        rollout_buffer.intrinsic_x = x.cpu().numpy().reshape(*shape, -1)
        rollout_buffer.intrinsic_target = target.cpu().numpy().reshape(*shape, -1)
        with th.no_grad():
            values = self.policy.predict_values(obs_as_tensor(new_obs, self.device))
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        self.logger.record("intrinsic/reward_mean", float(rollout_buffer.rewards_int.mean()))
        self.logger.record("intrinsic/reward_std", float(rollout_buffer.rewards_int.std()))
        self.logger.record("intrinsic/raw_reward_mean", float(raw_int.mean()))
        self.logger.record("intrinsic/coef", float(rollout_buffer.int_coef))
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    # ------------------------------------------------------------------ update
    def train(self) -> None:
        """PPO's update with two value losses, plus one predictor step per minibatch."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        clip_range_vf = (
            self.clip_range_vf(self._current_progress_remaining)
            if self.clip_range_vf is not None
            else None
        )
        logs: dict[str, list[float]] = {
            k: []
            for k in (
                "entropy_loss",
                "policy_gradient_loss",
                "value_loss_ext",
                "value_loss_int",
                "approx_kl",
                "clip_fraction",
                "predictor_loss",
            )
        }
        continue_training = True
        loss = th.zeros(())
        for _ in range(self.n_epochs):
            for data in self.rollout_buffer.get(self.batch_size):
                actions = data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = actions.long().flatten()
                values, log_prob, entropy = self.policy.evaluate_actions(data.observations, actions)
                adv = data.advantages
                if self.normalize_advantage and len(adv) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                ratio = th.exp(log_prob - data.old_log_prob)
                policy_loss = -th.min(
                    adv * ratio, adv * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
                ).mean()
                if clip_range_vf is not None:
                    values = data.old_values + th.clamp(
                        values - data.old_values, -clip_range_vf, clip_range_vf
                    )
                v_loss_ext = F.mse_loss(data.returns[:, 0], values[:, 0])
                v_loss_int = F.mse_loss(data.returns[:, 1], values[:, 1])
                entropy_loss = -th.mean(-log_prob) if entropy is None else -th.mean(entropy)
                loss = (
                    policy_loss
                    + self.ent_coef * entropy_loss
                    + self.vf_coef * (v_loss_ext + v_loss_int)
                )
                with th.no_grad():
                    log_ratio = log_prob - data.old_log_prob
                    approx_kl = th.mean((th.exp(log_ratio) - 1) - log_ratio).item()
                logs["policy_gradient_loss"].append(policy_loss.item())
                logs["value_loss_ext"].append(v_loss_ext.item())
                logs["value_loss_int"].append(v_loss_int.item())
                logs["entropy_loss"].append(entropy_loss.item())
                logs["approx_kl"].append(approx_kl)
                logs["clip_fraction"].append(
                    th.mean((th.abs(ratio - 1) > clip_range).float()).item()
                )
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
                # the predictor trains on a random update-proportion share of the minibatch
                metrics = self.intrinsic.update_prepared(data.intrinsic_x, data.intrinsic_target)
                logs["predictor_loss"].append(metrics["predictor_loss"])
            self._n_updates += 1
            if not continue_training:
                break
        buf = self.rollout_buffer
        for k, v in logs.items():
            if v:
                prefix = "intrinsic" if k == "predictor_loss" else "train"
                self.logger.record(f"{prefix}/{k}", float(np.mean(v)))
        self.logger.record("train/value_loss", float(np.mean(logs["value_loss_ext"])))
        self.logger.record(
            "train/explained_variance",
            explained_variance(buf.values.flatten(), buf.returns.flatten()),
        )
        self.logger.record(
            "train/explained_variance_int",
            explained_variance(buf.values_int.flatten(), buf.returns_int.flatten()),
        )
        self.logger.record("train/loss", loss.item())
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)

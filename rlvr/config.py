"""Typed run configuration: dataclasses loaded from one YAML file plus dotted command-line overrides.

    cfg = load_config("examples/demo.yaml", ["trainer.lr=1e-6", "rollout.n=16"])

Every key is checked before any model loads: an unknown key names the closest valid one, a wrong type names
the expected type, and impossible combinations (see ``validate``) fail with the keys involved.
The ``algorithm`` section may be a bare preset name (``algorithm: dapo``) or a mapping whose ``name`` picks the
preset and whose other keys override the preset field by field.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlvr.registry import closest
from rlvr.selfplay.executor import FORBIDDEN_MODULES as _FORBIDDEN_MODULES, FORBIDDEN_NAMES as _FORBIDDEN_NAMES


class ConfigError(ValueError):
    """A configuration problem, raised before any model or data is loaded."""


class _DuplicateKey(ValueError):
    pass


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping holding the same key twice (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # SafeLoader reports unhashable keys itself
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise _DuplicateKey(f"duplicate key {key!r} on line {seen[key]} and line {line} (the second "
                                        "would silently replace the first): merge the two into one")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


@dataclass
class LoraConfig:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])


@dataclass
class ModelConfig:
    path: str = ""  # a local Hugging Face folder (or a hub id where there is network)
    dtype: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16 | float16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)
    freeze_vision: bool = False  # vision-language models: keep the vision tower fixed (docs/vision.md)


@dataclass
class SourceConfig:
    """One entry of ``data.sources`` (a weighted mixture); empty / 0 fields take the data section's value."""

    source: str = ""  # as data.source: a file, a datasets folder, reasoning_gym:<name>
    weight: float = 1.0  # share of each prompt batch (weights are normalised over the sources)
    name: str = ""  # the name in metrics (reward/source/<name>/mean); default: the file stem or the task name
    verifier: str = ""  # verifier of rows without their own; "" = data.verifier
    question_field: str = ""
    answer_field: str = ""
    split: str = ""
    size: int = 0  # reasoning_gym items; 0 = data.size
    kwargs: dict[str, Any] | None = None  # reasoning_gym kwargs; None = data.kwargs
    template: str = ""  # prompt template of this source's rows; "" = prompt.template
    image_field: str = ""  # "" = data.image_field


@dataclass
class DataConfig:
    source: str = ""  # file (.jsonl/.parquet/.csv), HF datasets folder, or reasoning_gym:<name>
    sources: list[SourceConfig] = field(default_factory=list)  # a weighted mixture instead of one source
    sampling: str = "uniform"  # uniform (seeded epochs) | weakness (in proportion to a smoothed failure rate)
    weakness_floor: float = 0.1  # weakness: every prompt keeps at least this weight (a solved one is never starved)
    weakness_smoothing: float = 0.5  # weakness: the new visit's weight in the failure-rate EMA
    weakness_prior: float = 1.0  # weakness: the failure rate of a prompt not seen yet (1 = visit unseen first)
    skip_solved: int = 0  # drop prompts solved by every completion in their last N visits; 0 = off
    min_active: float = 0.1  # skip_solved: the share of prompts always kept in play (at least one batch)
    split: str = "train"  # split name inside a DatasetDict folder
    question_field: str = "question"
    answer_field: str = "answer"
    teacher_field: str = ""  # a row field with teacher completion(s), a string or a list (algorithm.guidance)
    verifier: str = "math"  # verifier for rows of file sources (a row's own "verifier" field wins)
    size: int = 1000  # number of items generated for reasoning_gym sources
    kwargs: dict[str, Any] = field(default_factory=dict)  # reasoning_gym dataset kwargs
    seed: int = 0
    on_bad_row: str = "skip"  # skip | fail
    image_field: str = ""  # the row field holding its image(s): path(s) relative to the data file, base64, bytes
    max_prompt_tokens: int = 0  # longer prompts are skipped; 0 = the model's max_position_embeddings - rollout.max_new_tokens
    shuffle: bool = True
    eval_source: str = ""  # held-out set for eval during training (same fields as source)
    eval_size: int = 256  # items generated for a reasoning_gym eval source / cap for file sources
    eval_seed: int = 12345
    eval_kwargs: dict[str, Any] | None = None  # reasoning_gym kwargs of the eval source; None = kwargs
    eval_split: str = "test"  # split of a DatasetDict eval folder


@dataclass
class PromptConfig:
    template: str = "{question}"  # str.format fields come from the row (question, answer, metadata keys)
    chat_template: bool = False  # wrap with the tokenizer's chat template
    system_prompt: str = ""  # text, or "r1" for the built-in <think>/<answer> instruction


@dataclass
class VLLMConfig:
    """Settings of the vLLM engine (rollout.engine: vllm); see docs/rollout.md."""

    gpu_memory_utilization: float = 0.5  # share of device memory for weights + KV cache (of RAM on CPU)
    kv_cache_gb: float = 0.0  # > 0: exactly this much KV cache instead (starts faster: no memory profiling)
    max_model_len: int = 0  # prompt + response tokens per sequence; 0 = longest prompt + max new tokens
    enforce_eager: bool = True  # no CUDA graphs / compilation: fast start; false is faster for long runs
    tensor_parallel_size: int = 1
    sleep_mode: bool = False  # GPU only: free the KV cache (and offload weights) during the policy update
    dtype: str = "auto"  # auto = model.dtype as resolved for the trainer | float32 | bfloat16 | float16
    seed: int = 0  # mixed into the per-request seeds (which come from trainer.seed and the step)
    sync_check_tol: float = 0.0  # max mean |log-prob difference| engine vs trainer after a sync; 0 = by dtype


@dataclass
class HFRolloutConfig:
    """Settings of the HF engine (rollout.engine: hf); see docs/rollout.md."""

    decode: str = "loop"  # loop (our decode loop, finished rows dropped) | generate (transformers generate)
    compile: bool = False  # torch.compile the loop's one-token step (needs decode loop and a static cache)
    cache: str = "auto"  # the loop's KV cache: static (preallocated) | dynamic (grows) | auto (static when compiled,
    # else dynamic: eager, a dynamic cache attends only over what is filled and is faster); generate ignores it


@dataclass
class MultiTurnConfig:
    """Multi-turn rollouts with tools or an environment (rlvr.rollout.multi_turn, docs/multi_turn.md); on when
    ``tools`` or ``env`` is set. ``rollout.max_new_tokens`` is then the budget of the whole trajectory after the
    prompt (model and observation tokens)."""

    max_turns: int = 4  # model turns per trajectory (a trajectory still calling tools after these ends "max_turns")
    tools: list[Any] = field(default_factory=list)  # names or {name, params}: calculator | python | search
    stop: list[str] = field(default_factory=list)  # extra strings that end a model turn (format json adds </tool_call>)
    max_tool_output_tokens: int = 256  # longer tool outputs are cut to this many tokens (marked "[truncated]")
    format: str = "json"  # json: <tool_call>{...}</tool_call> -> <tool_response>...</tool_response> | chat_template
    env: str = ""  # "my_env.py:MyEnv": reset(example) / step(action_text) in worker processes (instead of tools)
    env_workers: int = 1  # environment worker processes
    discount: float = 1.0  # per-turn environment rewards: sum of discount**k * r_k over the model turns k
    timeout_s: float = 10.0  # per tool call / environment call; past it: an error observation (env: trajectory ends)

    @property
    def enabled(self) -> bool:
        return bool(self.tools or self.env)


@dataclass
class RolloutConfig:
    engine: str = "hf"  # hf (transformers model on the policy) | vllm (needs vLLM; see docs/rollout.md)
    prompts_per_step: int = 16  # P
    n: int = 8  # G, completions per prompt
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    batch_size: int = 0  # prompts x completions generated per forward batch; 0 = all at once
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    hf: HFRolloutConfig = field(default_factory=HFRolloutConfig)
    multi_turn: MultiTurnConfig = field(default_factory=MultiTurnConfig)


@dataclass
class RewardComponentConfig:
    name: str = "auto"  # a registered verifier, "auto" (each example's own verifier) or "file.py:function"
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class RewardConfig:
    components: list[RewardComponentConfig] = field(default_factory=lambda: [RewardComponentConfig()])
    timeout_s: float = 10.0  # per item
    num_workers: int = 0  # worker processes; 0 = number of cores
    correct_threshold: float = 0.5  # a completion whose "auto"/first component scores >= this counts as correct
    memory_limit_mb: int = 4096  # address-space limit (RLIMIT_AS) of each verifier worker process; 0 = none


@dataclass
class GuidanceConfig:
    """Off-policy teacher guidance (LUFFY, RL-PLUS, AMPO, ReLIFT; docs/guidance.md): the teacher completions of
    ``data.teacher_field`` replace on-policy slots of a group (placement in_group) or feed an interleaved
    supervised step (placement sft_buffer). trigger never (the default) turns it off."""

    trigger: str = "never"  # never | always (every group) | all_fail (groups where no rollout is correct)
    n_inject: int = 1  # teacher completions per triggered group (at most the example's teachers and G)
    select: str = "first"  # first | random | comprehension (the policy's probability of the gold answer after it)
    placement: str = "in_group"  # in_group (replace slots, off-policy loss) | sft_buffer (ReLIFT's SFT step)
    off_weight: str = "luffy"  # the teacher tokens' surrogate: luffy p/(p+gamma) | rlplus | none (plain ratio)
    gamma: float = 0.1  # luffy's policy-shaping constant
    adv_scale: str = "none"  # none | explore (RL-PLUS: A * (1 - sg[p])^0.5 on teacher tokens)
    on_clip: bool = True  # false: the on-policy tokens' ratio is not clipped (LUFFY / RL-PLUS released scripts)
    force_teacher_reward: float | None = None  # AMPO: a teacher completion scoring below this gets this reward
    sft_buffer_size: int = 128  # ReLIFT: demonstrations collected before one supervised step
    sft_lr: float = 1e-6  # ReLIFT: the supervised step's learning rate (its own AdamW)
    sft_entropy_coef: float = 0.001  # ReLIFT: loss = NLL - coef * entropy
    sft_micro_batch_size: int = 32  # rows per forward/backward of the supervised step

    @property
    def enabled(self) -> bool:
        return self.trigger != "never"


@dataclass
class AlgorithmConfig:
    name: str = "grpo"  # preset; its values are applied first, then the keys given here
    advantage: str = "grpo"
    norm_by_std: bool = True
    adv_scale: str = "group"  # group | batch | none  (where the std for normalization comes from)
    adv_eps: float = 1e-6
    group_key: str = ""  # metadata key: baselines over all completions sharing its value (TRR++ task x role)
    loss: str = "ppo_clip"
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float = 0.0  # 0 = off; verl uses 3.0
    # Clip-Cov / KL-Cov (loss: clip_cov | kl_cov, docs/algorithms.md): share of tokens picked by covariance,
    # clip_cov's covariance band, kl_cov's |logp - old| coefficient
    cov_ratio: float = 2e-4
    cov_lb: float = 1.0
    cov_ub: float = 5.0
    kl_cov_coef: float = 1.0
    agg: str = "token-mean"
    agg_norm_len: int = 0  # constant for seq-mean-token-sum-norm; 0 = rollout.max_new_tokens
    kl_coef: float = 0.0  # beta; 0 loads no reference model
    kl_estimator: str = "k3"
    kl_in: str = "loss"  # loss | reward
    kl_target: float = 0.0  # > 0 turns on the adaptive KL controller
    kl_horizon: int = 10000
    ref_reset_every: int = 0  # steps; 0 = never (ProRL hard reset of the reference + optimizer state)
    ref_reset_patience: int = 0  # reset when reward mean has not improved for this many steps; 0 = off
    entropy_coef: float = 0.0  # entropy bonus: loss = pg - coef * H
    entropy_top_frac: float = 1.0  # forking tokens: keep pg loss on the top fraction by entropy; 1 = all
    dynamic_sampling: bool = False  # drop zero-variance groups and sample more until the batch is full
    max_sample_batches: int = 10
    # RLPR's prompt filter: drop groups whose reward std < std_filter_beta x EMA(std) (decay std_filter_ema)
    std_filter: bool = False
    std_filter_beta: float = 0.5
    std_filter_ema: float = 0.99
    overlong_filter: bool = False  # mask truncated completions out of the loss
    logprob_chunk: int = 1024  # tokens per chunk for log-prob / entropy computation
    # off-policy correction for a sampler other than the trainer (vLLM): none | token_truncate | token_mask |
    # sequence_truncate | sequence_mask; the pg term is weighted by min(pi_old / pi_sampler, cap) (docs/algorithms.md)
    rollout_is: str = "none"
    rollout_is_cap: float = 2.0
    # GAE (advantage: gae, PPO with a critic): discount and GAE lambda over the response tokens
    gamma: float = 1.0
    lam: float = 1.0
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)  # teacher completions (docs/guidance.md)


@dataclass
class TrainerConfig:
    steps: int = 100
    lr: float = 1e-6
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 0
    schedule: str = "constant"  # constant | cosine
    min_lr_ratio: float = 0.0
    epochs: int = 1  # policy epochs per rollout batch
    mini_batches: int = 1  # optimizer steps per epoch
    micro_batch_size: int = 8  # completions per forward/backward
    max_grad_norm: float = 1.0
    seed: int = 0
    deterministic: bool = False
    max_bad_steps: int = 3  # consecutive non-finite steps before the run stops
    # speed of the update (docs: rlvr/trainer/update.py); each path is tested equal to the default one
    compile: bool = False  # torch.compile the policy's forward in the update (eager fallback on any failure)
    packing: bool = False  # pack several sequences per row (block-diagonal causal attention) instead of padding
    # old log-probs from the HF engine's own sampling log-probs instead of a no-grad pass (verified once at run
    # time; only where they are the same distribution: engine hf, top_k 0, top_p 1, no dropout): auto | never
    reuse_rollout_logprobs: str = "auto"


@dataclass
class CheckpointConfig:
    every: int = 50  # steps; 0 = only at the end
    keep: int = 2  # most recent checkpoints kept
    resume: str = "auto"  # auto | never | path to a checkpoint folder
    save_final: bool = True


@dataclass
class EvalConfig:
    every: int = 0  # steps; 0 = off
    n: int = 1
    temperature: float = 0.0  # 0 = greedy
    max_new_tokens: int = 0  # 0 = rollout.max_new_tokens
    k: list[int] = field(default_factory=lambda: [1])


@dataclass
class LoggingConfig:
    backends: list[str] = field(default_factory=list)  # tensorboard | wandb | mlflow
    project: str = "rlvr"
    run_name: str = ""  # "" = the name of output_dir
    log_completions: bool = True
    progress: bool = True


@dataclass
class DistributedConfig:
    """Where work runs (docs/distributed.md). backend none = this process; ray = Ray actors: trainer ranks (one
    torch.distributed group, FSDP2), rollout workers (a rollout engine each) and reward workers (a scorer each)."""

    backend: str = "none"  # none | ray
    address: str = ""  # "" = start a local Ray instance; auto = join the running cluster; host:port / ray://...
    trainer_workers: int = 1  # data-parallel ranks (parameters, gradients and optimizer state sharded: FSDP2)
    rollout_workers: int = 1
    reward_workers: int = 1
    trainer_cpus: float = 1.0  # Ray resources each actor asks for (its torch threads: the CPUs, at least 1)
    trainer_gpus: float = 0.0  # 1 on a GPU cluster (NCCL); 0 = CPU ranks (gloo)
    rollout_cpus: float = 1.0
    rollout_gpus: float = 0.0
    reward_cpus: float = 1.0
    colocate: bool = False  # rollout worker i shares trainer rank i's placement bundle (and GPU); else own
    max_restarts: int = 3  # Ray restarts a dead rollout / reward worker this many times; the step is retried
    num_cpus: int = 0  # CPUs of the local Ray instance started when address is ""; 0 = Ray's default (all)


@dataclass
class AsyncConfig:
    """Asynchronous RL (docs/async.md), the YAML section ``async``: rollouts overlap training, sampled by a rollout
    process beside the trainer (or the Ray rollout workers), under a strict staleness bound, with decoupled PPO."""

    max_staleness: int = 0  # k: a trained group was sampled at most k weight versions ago; 0 = the synchronous loop
    mode: str = "fixed"  # fixed: batch n sampled with the weights of step n - k exactly | free: any group within k
    partial_rollout: bool = False  # free mode: generation in flight is interrupted by new weights and resumed
    sync_timeout_s: float = 120.0  # deadline of every weight sync (transfer + round-trip check)
    correction: str = "decoupled"  # decoupled (PPO ratio vs pi_prox, weight pi_prox / mu) | none (ablation only)
    rollout_threads: int = 0  # torch threads of the rollout process; 0 = half the cores (at least 1)
    trainer_threads: int = 0  # torch threads of the trainer while async; 0 = the cores the rollout leaves
    start_timeout_s: float = 600.0  # the rollout process loading its model and engine


@dataclass
class CriticConfig:
    """PPO's value model (advantage: gae; docs/algorithms.md "PPO with a critic"): a separate model, or a value
    head on the policy's backbone."""

    path: str = ""  # a separate critic: a causal LM folder (a value head is added) or a saved critic folder
    shared: bool = False  # instead: a value head on the policy's own backbone (one forward/backward for both)
    lr: float = 1e-5  # the critic's (shared: the value head's) learning rate, on the trainer's schedule
    weight_decay: float = 0.0
    warmup_steps: int = 0  # the first N steps train only the critic (the policy is not updated)
    clip_value: float = 0.5  # value clipping: |V - V_old| <= clip_value in the loss's clipped branch; 0 = off
    value_coef: float = 1.0  # weight of the value loss (shared: beside the policy loss in one backward)
    lora: LoraConfig = field(default_factory=LoraConfig)  # LoRA adapters on a separate critic (its head trains fully)


@dataclass
class SelfPlayConfig:
    """Absolute Zero self-play (docs/selfplay.md): the model proposes and solves its own code-reasoning tasks;
    ``rlvr selfplay CFG`` sets ``enabled``. Each step: ``propose_per_type`` proposer prompts and ``solve_per_type``
    solver prompts per task type, ``rollout.n`` completions each."""

    enabled: bool = False
    task_types: list[str] = field(default_factory=lambda: ["deduction", "abduction", "induction"])
    propose_per_type: int = 4
    solve_per_type: int = 4
    n_refs: int = 6  # K reference triplets in a deduction / abduction proposer prompt
    n_inputs: int = 10  # inputs an induction proposal gives (half shown to the solver, half hidden)
    n_solve: int = 4  # solver samples that estimate a proposal's solve rate (its proposer reward)
    style: str = "full"  # prompt wording: full (instruct / base LLMs) | compact (the tiny CPU demo model)
    require_think: bool = True  # format check: <think>...</think><answer>...</answer> (else <answer> alone)
    composite: bool = True  # -1 bad format or invalid, -0.5 format ok and r = 0, else r (the paper's); false: r
    seed_buffer_size: int = 0  # before training, grow each buffer to this many tasks with the base model
    seed_tasks: str = ""  # JSONL of programs + inputs added to the deduction / abduction buffers after the identity
    buffer_size: int = 0  # keep the newest N tasks per type (the seed stays); 0 = unbounded
    call_timeout_s: float = 2.0  # per program call in the sandbox
    memory_mb: int = 1024  # address space of the sandboxed process
    max_program_chars: int = 2000
    forbidden_modules: list[str] = field(default_factory=lambda: list(_FORBIDDEN_MODULES))
    forbidden_names: list[str] = field(default_factory=lambda: list(_FORBIDDEN_NAMES))


@dataclass
class RunConfig:
    output_dir: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    async_: AsyncConfig = field(default_factory=AsyncConfig)  # YAML / CLI key: async (a Python keyword)
    critic: CriticConfig = field(default_factory=CriticConfig)
    selfplay: SelfPlayConfig = field(default_factory=SelfPlayConfig)
    stages: list[dict[str, Any]] = field(default_factory=list)  # cascaded stages: [{name, <section>: {...}}, ...]


# YAML keys that are Python keywords, and the dataclass fields that hold them
KEY_ALIASES = {"async": "async_"}


# ----------------------------------------------------------------------------------------------------------
# dict -> dataclass with checks


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (converting int -> float), naming ``key`` on failure."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            if option is type(None) and value is None:
                return None
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[-1] if errors else f"{key}: bad value {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-6 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        key = KEY_ALIASES.get(key, key) if not prefix else key
        if key not in names:
            hint = closest(str(key), names)
            where = f" in '{prefix}'" if prefix else ""
            suggestion = f"; did you mean '{(prefix + '.') if prefix else ''}{hint}'?" if hint else ""
            raise ConfigError(f"unknown key '{full}'{where}{suggestion} valid keys: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], full)
    return cls(**kwargs)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if isinstance(child, str) and part == "algorithm":
            child = {"name": child}
        if not isinstance(child, dict):
            child = {}
        node[part] = child
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """``["trainer.lr=1e-6", "rollout.n=16"]`` -> ``[("trainer.lr", 1e-06), ("rollout.n", 16)]`` (values read as YAML)."""
    parsed = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-")
        if not key:
            raise ConfigError(f"override {item!r} has no key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"override {item!r}: the value {raw!r} is not valid YAML ({problem}); quote it "
                              f"to pass a string, e.g. {key}='\"{raw}\"'") from None
        parsed.append((key, value))
    return parsed


def _apply_preset(tree: dict[str, Any]) -> None:
    """Turn ``algorithm: NAME`` into a mapping and fill it with the preset's values under the user's keys."""
    from rlvr.algorithms.presets import PRESETS

    algo = tree.get("algorithm", {})
    if isinstance(algo, str):
        algo = {"name": algo}
    if not isinstance(algo, dict):
        raise ConfigError(f"algorithm: expected a preset name or a mapping, got {algo!r}")
    name = algo.get("name", "grpo")
    try:
        preset = PRESETS.get(str(name))
    except KeyError as err:
        raise ConfigError(f"algorithm.name: {err.args[0]}") from None
    merged = dict(preset)
    for key, value in algo.items():  # a nested section (guidance) merges key by key over the preset's
        base = merged.get(key)
        merged[key] = {**base, **value} if isinstance(base, dict) and isinstance(value, dict) else value
    merged["name"] = name
    tree["algorithm"] = merged


def config_from_dict(tree: dict[str, Any], overrides: list[str] | None = None) -> RunConfig:
    """Build and validate a RunConfig from a plain mapping plus dotted overrides."""
    tree = _deepcopy(tree or {})
    if not isinstance(tree, dict):
        raise ConfigError(f"the config must be a mapping of sections, got {type(tree).__name__}")
    if isinstance(tree.get("algorithm"), str):
        tree["algorithm"] = {"name": tree["algorithm"]}
    for key, value in parse_overrides(overrides or []):
        if key == "algorithm" and isinstance(value, str):
            key = "algorithm.name"
        _set_dotted(tree, key, value)
    _apply_preset(tree)
    cfg = _build(RunConfig, tree)
    validate(cfg)
    default_answer_format(cfg)
    if cfg.stages:
        stage_configs(cfg)  # every stage checked now, not when it starts
    return cfg


ANSWER_FORMAT_VERIFIERS = ("math", "mcqa")  # the verifiers with an ``answer_format`` param


def prompt_asks_for_tag(prompt: PromptConfig) -> bool:
    """The documented rule: system_prompt "r1", or "<answer>" in the template or the system prompt."""
    return prompt.system_prompt == "r1" or "<answer>" in prompt.template or "<answer>" in prompt.system_prompt


def default_answer_format(cfg: RunConfig) -> None:
    """When the prompt asks for an <answer> tag, the math / mcqa / auto components without an ``answer_format``
    param get ``tag_or_boxed`` (a completion with neither span scores 0, "no answer span"); otherwise they keep
    the verifiers' default ``any``. Written into the params, so the saved config shows it."""
    if not prompt_asks_for_tag(cfg.prompt):
        return
    for comp in cfg.reward.components:
        if comp.name in ANSWER_FORMAT_VERIFIERS + ("auto",) and "answer_format" not in (comp.params or {}):
            comp.params = {**(comp.params or {}), "answer_format": "tag_or_boxed"}


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML file (or nothing: defaults) and apply ``key.sub=value`` overrides."""
    tree: Any = {}
    if path is not None:
        p = Path(path)
        if p.is_dir():
            raise ConfigError(f"config {p} is a directory, not a YAML file")
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError(f"{p}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") from None
        except OSError as err:
            raise ConfigError(f"config {p} cannot be read: {err.strerror or err}") from None
        try:
            tree = yaml.load(text, Loader=UniqueKeyLoader)
        except _DuplicateKey as err:
            raise ConfigError(f"{p}: {err}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{p}: not valid YAML: {' '.join(str(err).split())}") from None
        if tree is None:
            raise ConfigError(f"config {p} is empty (no settings): give at least model.path and data.source")
        if not isinstance(tree, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections")
    return config_from_dict(tree, overrides)


def _deepcopy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _deepcopy(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_deepcopy(v) for v in tree]
    return tree


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain YAML-able data, under the YAML keys (``async``, not ``async_``)."""
    out = dataclasses.asdict(cfg)
    if isinstance(cfg, RunConfig):
        fields = {v: k for k, v in KEY_ALIASES.items()}
        out = {fields.get(k, k): v for k, v in out.items()}
    return out


def to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# ----------------------------------------------------------------------------------------------------------
# cross-field checks


def _choice(key: str, value: str, choices: list[str]) -> None:
    if value not in choices:
        hint = closest(value, choices)
        extra = f"; did you mean {hint!r}?" if hint else ""
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}{extra}")


def _registered(key: str, value: str, registry: Any) -> None:
    try:
        registry.get(value)
    except KeyError as err:
        raise ConfigError(f"{key}: {err.args[0]}") from None


def n1_message(advantage: str, n: int) -> str:
    """Why a group-baseline advantage refuses rollout.n < 2: what rlvr.algorithms.advantages would compute."""
    does = {
        "grpo": "the raw reward r / (1 + adv_eps) (or r over the batch std with adv_scale: batch)",
        "dr_grpo": "the raw reward r",
        "rloo": "the raw reward r",
        "reinforce_pp_baseline": "the batch-whitened reward, i.e. reinforce_pp without a group baseline",
    }[advantage]
    return (f"rollout.n = {n}: each group holds one completion, and a group of one has no baseline (verl's "
            f"convention: mean 0, std 1), so the {advantage!r} advantage would be {does}: REINFORCE with no "
            f"per-prompt baseline, not {advantage}; use rollout.n >= 2 (or advantage reinforce_pp for a batch "
            "baseline, or algorithm.group_key to pool prompts into groups)")


def validate(cfg: RunConfig) -> None:
    """Fail on values and combinations that cannot work, before anything heavy happens."""
    from rlvr.algorithms import ADVANTAGES, AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES
    from rlvr.algorithms.rollout_correction import ROLLOUT_IS_MODES

    a, r, t = cfg.algorithm, cfg.rollout, cfg.trainer
    _choice("model.dtype", cfg.model.dtype, ["auto", "float32", "bfloat16", "float16"])
    if not (cfg.model.device in ("auto", "cpu", "cuda", "mps") or cfg.model.device.startswith("cuda:")):
        raise ConfigError(f"model.device: {cfg.model.device!r} is not auto, cpu, cuda, cuda:N or mps")
    _choice("data.on_bad_row", cfg.data.on_bad_row, ["skip", "fail"])
    _choice("trainer.schedule", t.schedule, ["constant", "cosine"])
    _choice("trainer.reuse_rollout_logprobs", t.reuse_rollout_logprobs, ["auto", "never"])
    _choice("algorithm.adv_scale", a.adv_scale, ["group", "batch", "none"])
    _choice("algorithm.kl_in", a.kl_in, ["loss", "reward"])
    _choice("rollout.engine", r.engine, ["hf", "vllm"])
    _validate_async(cfg)
    _validate_multi_turn(cfg)
    _validate_critic(cfg)
    _validate_data(cfg)
    _validate_vision(cfg)
    _validate_guidance(cfg)
    _validate_selfplay(cfg)
    d = cfg.distributed
    _choice("distributed.backend", d.backend, ["none", "ray"])
    for key in ("trainer_workers", "rollout_workers", "reward_workers"):
        if getattr(d, key) < 1:
            raise ConfigError(f"distributed.{key} must be >= 1, got {getattr(d, key)}")
    for key in ("trainer_cpus", "trainer_gpus", "rollout_cpus", "rollout_gpus", "reward_cpus", "max_restarts",
                "num_cpus"):
        if getattr(d, key) < 0:
            raise ConfigError(f"distributed.{key} must be >= 0, got {getattr(d, key)}")
    if d.colocate and d.rollout_workers > d.trainer_workers:
        raise ConfigError(f"distributed.colocate puts rollout worker i on trainer rank i's devices: rollout_workers "
                          f"({d.rollout_workers}) must be <= trainer_workers ({d.trainer_workers})")
    _choice("rollout.vllm.dtype", r.vllm.dtype, ["auto", "float32", "bfloat16", "float16"])
    _choice("rollout.hf.decode", r.hf.decode, ["loop", "generate"])
    _choice("rollout.hf.cache", r.hf.cache, ["auto", "static", "dynamic"])
    if r.hf.compile and (r.hf.decode != "loop" or r.hf.cache == "dynamic"):
        raise ConfigError(f"rollout.hf.compile compiles the decode loop's one-token step over a static cache; it "
                          f"needs rollout.hf.decode: loop and rollout.hf.cache: static (got decode "
                          f"{r.hf.decode!r}, cache {r.hf.cache!r})")
    _choice("algorithm.rollout_is", a.rollout_is, list(ROLLOUT_IS_MODES))
    if a.rollout_is != "none" and a.rollout_is_cap < 1:
        raise ConfigError(f"algorithm.rollout_is_cap must be >= 1 (Yao et al. use 2), got {a.rollout_is_cap}")
    if not 0 < r.vllm.gpu_memory_utilization <= 1:
        raise ConfigError(f"rollout.vllm.gpu_memory_utilization must be in (0, 1], got {r.vllm.gpu_memory_utilization}")
    if r.vllm.tensor_parallel_size < 1 or min(r.vllm.max_model_len, r.vllm.sync_check_tol, r.vllm.kv_cache_gb) < 0:
        raise ConfigError("rollout.vllm.tensor_parallel_size must be >= 1; max_model_len, sync_check_tol and "
                          "kv_cache_gb >= 0")
    if r.engine == "vllm" and r.vllm.sleep_mode and cfg.model.device == "cpu":
        raise ConfigError("rollout.vllm.sleep_mode frees GPU memory during the update and works on GPU only "
                          "(vLLM's CPU backend ignores it); set it to false with model.device: cpu")
    _registered("algorithm.advantage", a.advantage, ADVANTAGES)
    _registered("algorithm.loss", a.loss, POLICY_LOSSES)
    _registered("algorithm.agg", a.agg, AGGREGATIONS)
    _registered("algorithm.kl_estimator", a.kl_estimator, KL_ESTIMATORS)
    for b in cfg.logging.backends:
        _choice("logging.backends", b, ["tensorboard", "wandb", "mlflow"])
    positive = {
        "rollout.prompts_per_step": r.prompts_per_step,
        "rollout.n": r.n,
        "rollout.max_new_tokens": r.max_new_tokens,
        "trainer.steps": t.steps,
        "trainer.epochs": t.epochs,
        "trainer.mini_batches": t.mini_batches,
        "trainer.micro_batch_size": t.micro_batch_size,
        "algorithm.max_sample_batches": a.max_sample_batches,
        "algorithm.logprob_chunk": a.logprob_chunk,
        "reward.timeout_s": cfg.reward.timeout_s,
        "trainer.lr": t.lr,  # 0 trains without changing a weight
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be > 0, got {value}" + (" (the updates would not change a weight)"
                                                                    if key == "trainer.lr" else ""))
    nonneg = {
        "trainer.warmup_steps": t.warmup_steps,
        "trainer.max_grad_norm": t.max_grad_norm,
        "algorithm.kl_coef": a.kl_coef,
        "algorithm.clip_low": a.clip_low,
        "algorithm.clip_high": a.clip_high,
        "algorithm.entropy_coef": a.entropy_coef,
        "rollout.temperature": r.temperature,
        "rollout.top_k": r.top_k,
        "reward.num_workers": cfg.reward.num_workers,
        "checkpoint.every": cfg.checkpoint.every,
        "eval.every": cfg.eval.every,
    }
    for key, value in nonneg.items():
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}")
    if r.temperature == 0:
        raise ConfigError("rollout.temperature: 0 (greedy) gives G identical completions and zero advantages; use > 0")
    if cfg.eval.n > 1 and cfg.eval.temperature == 0:
        raise ConfigError(f"eval.n = {cfg.eval.n} samples at eval.temperature 0 are greedy and identical, so pass@k "
                          "would equal pass@1: set eval.temperature > 0 for pass@k, or eval.n = 1 for greedy pass@1")
    if not 0 < r.top_p <= 1:
        raise ConfigError(f"rollout.top_p must be in (0, 1], got {r.top_p}")
    if not 0 < a.entropy_top_frac <= 1:
        raise ConfigError(f"algorithm.entropy_top_frac must be in (0, 1], got {a.entropy_top_frac}")
    if not 0 < a.cov_ratio <= 1:
        raise ConfigError(f"algorithm.cov_ratio must be in (0, 1], got {a.cov_ratio}")
    if a.loss in ("clip_cov", "kl_cov") and a.guidance.enabled:
        raise ConfigError(f"algorithm.loss {a.loss} does not combine with algorithm.guidance (teacher completions "
                          "take the guided loss); use ppo_clip or gspo there")
    if a.cov_lb >= a.cov_ub:
        raise ConfigError(f"algorithm.cov_lb must be below algorithm.cov_ub, got {a.cov_lb} >= {a.cov_ub}")
    if a.dual_clip and a.dual_clip <= 1:
        raise ConfigError(f"algorithm.dual_clip must be > 1 (verl uses 3.0) or 0 to turn it off, got {a.dual_clip}")
    if r.n < 2 and not a.group_key and a.advantage in ("grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"):
        raise ConfigError(n1_message(a.advantage, r.n))
    batch = r.prompts_per_step * r.n
    if t.mini_batches > batch:
        raise ConfigError(f"trainer.mini_batches = {t.mini_batches} exceeds the batch of {batch} completions")
    if batch % t.mini_batches:
        raise ConfigError(
            f"trainer.mini_batches = {t.mini_batches} must divide rollout.prompts_per_step * rollout.n = {batch}"
        )
    if a.kl_in == "reward" and a.kl_coef == 0:
        raise ConfigError("algorithm.kl_in = 'reward' needs algorithm.kl_coef > 0")
    if a.kl_in == "reward" and a.advantage not in ("reinforce_pp", "gae"):
        raise ConfigError(
            f"algorithm.kl_in = 'reward' folds a token-level KL into the reward, which only the 'reinforce_pp' and "
            f"'gae' advantages use; with advantage {a.advantage!r} the KL would be dropped: use algorithm.kl_in = "
            "'loss'")
    if a.kl_target > 0 and a.kl_coef == 0:
        raise ConfigError("algorithm.kl_target > 0 adapts kl_coef, but kl_coef = 0 loads no reference: set kl_coef > 0")
    if a.kl_target > 0 and a.kl_horizon <= 0:
        raise ConfigError(f"algorithm.kl_horizon must be > 0 for the adaptive KL controller, got {a.kl_horizon}")
    if a.adv_eps <= 0:
        raise ConfigError(f"algorithm.adv_eps must be > 0 (a zero-variance group would divide by 0), got {a.adv_eps}")
    if a.agg_norm_len < 0:
        raise ConfigError(f"algorithm.agg_norm_len must be >= 0 (0 = rollout.max_new_tokens), got {a.agg_norm_len}")
    if a.dynamic_sampling and r.n < 2:
        raise ConfigError("algorithm.dynamic_sampling drops groups whose rewards all agree, which every group of "
                          f"rollout.n = {r.n} does; use rollout.n >= 2")
    if t.max_bad_steps < 1:
        raise ConfigError(f"trainer.max_bad_steps must be >= 1, got {t.max_bad_steps}")
    if not 0 <= t.min_lr_ratio <= 1:
        raise ConfigError(f"trainer.min_lr_ratio must be in [0, 1], got {t.min_lr_ratio}")
    if len(t.betas) != 2 or not all(0 <= b < 1 for b in t.betas):
        raise ConfigError(f"trainer.betas must be two numbers in [0, 1), got {t.betas}")
    if (a.ref_reset_every or a.ref_reset_patience) and a.kl_coef == 0:
        raise ConfigError("algorithm.ref_reset_every/ref_reset_patience reset a reference that kl_coef = 0 never loads")
    if (a.ref_reset_every or a.ref_reset_patience) and cfg.model.lora.enabled:
        raise ConfigError("algorithm.ref_reset_*: with model.lora.enabled the reference is the frozen base; turn one off")
    if t.warmup_steps > t.steps:
        raise ConfigError(f"trainer.warmup_steps = {t.warmup_steps} is longer than trainer.steps = {t.steps}")
    if not cfg.reward.components:
        raise ConfigError("reward.components is empty: at least one reward is needed")
    if all(c.weight == 0 for c in cfg.reward.components) and a.kl_coef == 0 and a.entropy_coef == 0 and \
            not r.multi_turn.env:  # an environment's per-turn rewards are added to the components' score
        raise ConfigError("reward.components: every weight is 0, so every reward and advantage is 0 and no update "
                          "changes a weight; give a component a non-zero weight")
    if cfg.model.lora.enabled and (cfg.model.lora.r <= 0 or cfg.model.lora.alpha <= 0):
        raise ConfigError(f"model.lora.r and model.lora.alpha must be > 0 (alpha 0 scales the adapters to nothing "
                          f"and no update changes the model), got r={cfg.model.lora.r}, alpha={cfg.model.lora.alpha}")
    if cfg.data.max_prompt_tokens < 0:
        raise ConfigError(f"data.max_prompt_tokens must be >= 0 (0 = the model's context minus "
                          f"rollout.max_new_tokens), got {cfg.data.max_prompt_tokens}")
    from rlvr.rewards import BATCH_REWARDS, VERIFIERS

    _registered("data.verifier", cfg.data.verifier, VERIFIERS)
    _validate_batch_rewards(cfg)

    for i, comp in enumerate(cfg.reward.components):
        key = f"reward.components[{i}].name"
        path, sep, function = comp.name.rpartition(":")
        if sep and path.endswith(".py"):
            if not Path(path).expanduser().is_file():
                raise ConfigError(f"{key}: reward file {path!r} not found")
            if not function.isidentifier():
                raise ConfigError(f"{key}: {function!r} is not a function name")
            _check_user_reward(key, path, function)
            if "in_process" in (comp.params or {}) and not isinstance(comp.params["in_process"], bool):
                raise ConfigError(f"reward.components[{i}].params.in_process: expected true or false, "
                                  f"got {comp.params['in_process']!r}")
        elif comp.name != "auto" and comp.name not in BATCH_REWARDS:
            _registered(key, comp.name, VERIFIERS)
        fmt = (comp.params or {}).get("answer_format")
        if fmt is not None:
            _choice(f"reward.components[{i}].params.answer_format", fmt, ["any", "tag", "boxed", "tag_or_boxed"])
            if comp.name not in ANSWER_FORMAT_VERIFIERS + ("auto",):
                raise ConfigError(f"reward.components[{i}].params.answer_format: only the math and mcqa verifiers "
                                  f"(or auto) read it, not {comp.name!r}")


def _validate_multi_turn(cfg: RunConfig) -> None:
    m, r = cfg.rollout.multi_turn, cfg.rollout
    _choice("rollout.multi_turn.format", m.format, ["json", "chat_template"])
    for key in ("max_turns", "max_tool_output_tokens", "env_workers"):
        if getattr(m, key) < 1:
            raise ConfigError(f"rollout.multi_turn.{key} must be >= 1, got {getattr(m, key)}")
    if m.timeout_s <= 0 or not 0 < m.discount <= 1:
        raise ConfigError(f"rollout.multi_turn.timeout_s must be > 0 and discount in (0, 1] (got {m.timeout_s}, "
                          f"{m.discount})")
    if not m.enabled:
        return
    from rlvr.rollout.tools import TOOLS, _register_builtins, tool_spec

    _register_builtins()
    if m.tools and m.env:
        raise ConfigError("rollout.multi_turn: give tools or env, not both (an environment answers every turn)")
    for i, entry in enumerate(m.tools):
        try:
            name, _ = tool_spec(entry)
        except ValueError as err:
            raise ConfigError(f"rollout.multi_turn.tools[{i}]: {err}") from None
        _registered(f"rollout.multi_turn.tools[{i}]", name, TOOLS)
    if m.env:
        path, sep, cls = m.env.rpartition(":")
        if not (sep and path.endswith(".py") and cls):
            raise ConfigError(f"rollout.multi_turn.env: expected 'file.py:ClassName', got {m.env!r}")
        if not Path(path).expanduser().is_file():
            raise ConfigError(f"rollout.multi_turn.env: {path} does not exist")
    if m.format == "chat_template" and not cfg.prompt.chat_template:
        raise ConfigError("rollout.multi_turn.format chat_template renders tool replies with the tokenizer's chat "
                          "template: it needs prompt.chat_template: true")
    if r.engine == "hf" and r.hf.decode != "loop":
        raise ConfigError("rollout.multi_turn continues trajectories from their token ids, which needs "
                          "rollout.hf.decode: loop (got generate)")
    if cfg.distributed.backend != "none" or cfg.async_.max_staleness > 0:
        raise ConfigError("rollout.multi_turn runs in the trainer's process for now: it needs distributed.backend: "
                          "none and async.max_staleness: 0")


GUIDANCE_CHOICES = {"trigger": ["never", "always", "all_fail"], "select": ["first", "random", "comprehension"],
                    "placement": ["in_group", "sft_buffer"], "off_weight": ["luffy", "rlplus", "none"],
                    "adv_scale": ["none", "explore"]}


def _validate_guidance(cfg: RunConfig) -> None:
    """algorithm.guidance (teacher completions, docs/guidance.md) and the label-free vote rewards."""
    g = cfg.algorithm.guidance
    for key, choices in GUIDANCE_CHOICES.items():
        _choice(f"algorithm.guidance.{key}", getattr(g, key), choices)
    for key in ("n_inject", "sft_buffer_size", "sft_micro_batch_size"):
        if getattr(g, key) < 1:
            raise ConfigError(f"algorithm.guidance.{key} must be >= 1, got {getattr(g, key)}")
    if not (g.gamma > 0 and math.isfinite(g.gamma)):
        raise ConfigError(f"algorithm.guidance.gamma must be a finite number > 0 (LUFFY: 0.1), got {g.gamma}")
    if not (g.sft_lr > 0 and math.isfinite(g.sft_lr)) or g.sft_entropy_coef < 0:
        raise ConfigError(f"algorithm.guidance.sft_lr must be > 0 and sft_entropy_coef >= 0 (ReLIFT: 1e-6, 0.001), "
                          f"got {g.sft_lr}, {g.sft_entropy_coef}")
    if g.force_teacher_reward is not None and not math.isfinite(g.force_teacher_reward):
        raise ConfigError(f"algorithm.guidance.force_teacher_reward must be a finite number or null, got "
                          f"{g.force_teacher_reward}")
    if g.enabled:
        if not cfg.data.teacher_field:
            raise ConfigError("algorithm.guidance needs teacher completions: set data.teacher_field to the row "
                              "field that holds them (a string or a list of strings)")
        if g.placement == "in_group" and g.n_inject >= cfg.rollout.n:
            raise ConfigError(f"algorithm.guidance.n_inject = {g.n_inject} would replace every one of the "
                              f"rollout.n = {cfg.rollout.n} rollouts of a group; keep at least one on-policy")
        if cfg.distributed.backend != "none" or cfg.async_.max_staleness > 0:
            raise ConfigError("algorithm.guidance runs in the synchronous single-process loop for now: it needs "
                              "distributed.backend: none and async.max_staleness: 0")
        if g.placement == "in_group" and cfg.algorithm.rollout_is != "none":
            raise ConfigError("algorithm.guidance in_group: teacher rows have no sampling log-probs, so the rollout "
                              "correction (algorithm.rollout_is) cannot weight them; set rollout_is: none")
        if cfg.rollout.multi_turn.enabled:
            raise ConfigError("algorithm.guidance injects single-turn teacher completions; it does not run with "
                              "rollout.multi_turn")
    from rlvr.rewards.vote import train_votes

    n_train = train_votes(cfg.reward.components)
    if n_train and not 1 <= n_train <= cfg.rollout.n:
        raise ConfigError(f"reward.components: majority_vote's n_train = {n_train} must be in [1, rollout.n = "
                          f"{cfg.rollout.n}] (the first n_train of the n votes are trained on)")
    if n_train and n_train < cfg.rollout.n and (cfg.async_.max_staleness > 0 or cfg.distributed.backend != "none"):
        raise ConfigError("majority_vote's n_train (train on the first n_train votes) runs in the synchronous "
                          "single-process loop for now")


def _validate_batch_rewards(cfg: RunConfig) -> None:
    """Batch rewards (rlpr, pairwise_judge: rlvr.rewards.batch), brpo and the RLPR std filter."""
    from rlvr.rewards import BATCH_REWARDS

    a, names = cfg.algorithm, [c.name for c in cfg.reward.components]
    for i, name in enumerate(names):
        if name in BATCH_REWARDS.policy_rewards:
            where = ("distributed.backend: ray (the policy lives on the trainer ranks, the scorer in reward workers)"
                     if cfg.distributed.backend == "ray" else
                     "async.max_staleness > 0 (the scorer runs beside updates that change the policy)"
                     if cfg.async_.max_staleness > 0 else "")
            if cfg.rollout.multi_turn.enabled:
                raise ConfigError(f"reward.components[{i}]: {name!r} re-scores the completion text with the policy, "
                                  "which a multi-turn trajectory's tool observations would enter; it does not run "
                                  "with rollout.multi_turn yet")
            if where:
                raise ConfigError(f"reward.components[{i}]: {name!r} scores with the policy in the trainer process "
                                  f"and does not run with {where}; use the synchronous single-process loop")
        if name == "pairwise_judge" and cfg.rollout.n < 2:
            raise ConfigError(f"reward.components[{i}]: pairwise_judge compares completions of the same prompt; "
                              f"rollout.n = {cfg.rollout.n} gives none to compare: use rollout.n >= 2")
    if a.advantage == "brpo" and "pairwise_judge" not in names:
        raise ConfigError("algorithm.advantage brpo takes the sign of a pairwise_judge outcome (+1 / -1 / 0 against "
                          "the group's reference); add a pairwise_judge reward component")
    others = [c.name for c in cfg.reward.components if c.name != "pairwise_judge" and c.weight != 0]
    if a.advantage == "brpo" and others:
        raise ConfigError(f"algorithm.advantage brpo takes the sign of the pairwise_judge outcome; {others[0]!r} has "
                          "a non-zero weight and would change that sign (and give the reference an advantage): "
                          "set its weight to 0 (it is still logged) or use another advantage")
    if "pairwise_judge" in names and cfg.distributed.backend == "ray":
        raise ConfigError("pairwise_judge is a batch reward that runs in the trainer process, not yet in Ray reward "
                          "workers; use distributed.backend: none")
    if a.std_filter:
        if not (a.std_filter_beta > 0 and math.isfinite(a.std_filter_beta)):
            raise ConfigError(f"algorithm.std_filter_beta must be a finite number > 0 (RLPR: 0.5), got "
                              f"{a.std_filter_beta}")
        if not 0 <= a.std_filter_ema < 1:
            raise ConfigError(f"algorithm.std_filter_ema must be in [0, 1) (RLPR: 0.99), got {a.std_filter_ema}")
        if cfg.rollout.n < 2:
            raise ConfigError("algorithm.std_filter compares each group's reward std with its running mean; "
                              f"rollout.n = {cfg.rollout.n} has no std: use rollout.n >= 2")
        if cfg.async_.max_staleness > 0:
            raise ConfigError("algorithm.std_filter keeps its running std in the synchronous loop's counters; it "
                              "does not run with async.max_staleness > 0 yet")


def _validate_async(cfg: RunConfig) -> None:
    s = cfg.async_
    _choice("async.mode", s.mode, ["fixed", "free"])
    _choice("async.correction", s.correction, ["decoupled", "none"])
    if s.max_staleness < 0:
        raise ConfigError(f"async.max_staleness must be >= 0 (0 = synchronous), got {s.max_staleness}")
    for key in ("sync_timeout_s", "start_timeout_s"):
        if not getattr(s, key) > 0:
            raise ConfigError(f"async.{key} must be > 0 seconds, got {getattr(s, key)}")
    for key in ("rollout_threads", "trainer_threads"):
        if getattr(s, key) < 0:
            raise ConfigError(f"async.{key} must be >= 0 (0 = automatic), got {getattr(s, key)}")
    if s.partial_rollout and s.mode != "free":
        raise ConfigError("async.partial_rollout interrupts generation when new weights arrive: it needs "
                          "async.mode=free (fixed mode samples each batch with one exact version)")
    if s.max_staleness == 0 and s.mode == "free":
        raise ConfigError("async.mode=free with max_staleness 0 would drop every group sampled during an update; "
                          "use max_staleness >= 1, or 0 with mode fixed (the synchronous loop)")
    if s.partial_rollout and (cfg.rollout.engine != "hf" or cfg.rollout.hf.decode != "loop"):
        raise ConfigError("async.partial_rollout needs the HF decode loop (rollout.engine=hf, rollout.hf.decode="
                          "loop), which can stop at a token boundary")
    if s.partial_rollout and cfg.distributed.backend == "ray":
        raise ConfigError("async.partial_rollout runs with the rollout process of one machine, not yet with Ray "
                          "rollout workers (docs/async.md, limits)")


def _validate_vision(cfg: RunConfig) -> None:
    """Images (data.image_field) travel through the HF engine and the in-process learner (docs/vision.md)."""
    if not (cfg.data.image_field or any(s.image_field for s in cfg.data.sources)):
        return
    if not cfg.prompt.chat_template:
        raise ConfigError("data.image_field: images are placed by the chat template ({'type': 'image'} parts); "
                          "set prompt.chat_template: true")
    refused = {"rollout.engine: vllm": cfg.rollout.engine != "hf", "async.max_staleness > 0":
               cfg.async_.max_staleness > 0, "distributed.backend: ray": cfg.distributed.backend != "none",
               "rollout.multi_turn": cfg.rollout.multi_turn.enabled, "a critic (PPO)": bool(cfg.critic.path or
                                                                                            cfg.critic.shared),
               "algorithm.guidance (teacher rows carry no pixel inputs)": cfg.algorithm.guidance.trigger != "never"}
    for name, on in refused.items():
        if on:
            raise ConfigError(f"data.image_field: prompts with images are sampled by the HF engine in this process; "
                              f"{name} does not take them yet (docs/vision.md)")
def _validate_selfplay(cfg: RunConfig) -> None:
    s = cfg.selfplay
    from rlvr.selfplay.tasks import STYLES, TASK_TYPES

    _choice("selfplay.style", s.style, list(STYLES))
    if not s.task_types or len(set(s.task_types)) != len(s.task_types):
        raise ConfigError(f"selfplay.task_types: a non-empty list without repeats, got {s.task_types!r}")
    for t in s.task_types:
        _choice("selfplay.task_types[]", t, list(TASK_TYPES))
    for key, low in (("propose_per_type", 1), ("solve_per_type", 1), ("n_refs", 1), ("n_inputs", 2), ("n_solve", 1),
                     ("seed_buffer_size", 0), ("buffer_size", 0), ("memory_mb", 64), ("max_program_chars", 16)):
        if getattr(s, key) < low:
            raise ConfigError(f"selfplay.{key} must be >= {low}, got {getattr(s, key)}")
    if not s.call_timeout_s > 0:
        raise ConfigError(f"selfplay.call_timeout_s must be > 0 seconds, got {s.call_timeout_s}")
    if not s.enabled:
        return
    refused = {"distributed.backend=ray": cfg.distributed.backend == "ray",
               "async.max_staleness > 0": cfg.async_.max_staleness > 0,
               "rollout.multi_turn": cfg.rollout.multi_turn.enabled, "stages": bool(cfg.stages),
               "data.sources": bool(cfg.data.sources), "algorithm.dynamic_sampling": cfg.algorithm.dynamic_sampling,
               "algorithm.std_filter": cfg.algorithm.std_filter, "critic (advantage gae)": cfg.algorithm.advantage == "gae",
               "algorithm.guidance": cfg.algorithm.guidance.trigger != "never", "data.image_field": bool(cfg.data.image_field)}
    for what, on in refused.items():
        if on:
            raise ConfigError(f"selfplay: {what} is not supported with self-play (it builds its own batch each step "
                              "in this process; docs/selfplay.md, limits)")
    if cfg.data.source:
        raise ConfigError("selfplay: data.source must be empty (self-play needs no training data; "
                          "data.eval_source may hold held-out tasks for the selfplay verifier)")


def _validate_data(cfg: RunConfig) -> None:
    d = cfg.data
    _choice("data.sampling", d.sampling, ["uniform", "weakness"])
    if d.sources and d.source:
        raise ConfigError("data.source and data.sources exclude each other: one source, or a weighted mixture "
                          "(move the source into data.sources with a weight)")
    names = []
    for i, s in enumerate(d.sources):
        if not s.source:
            raise ConfigError(f"data.sources[{i}].source is empty: give a file, a datasets folder or "
                              "reasoning_gym:<name>")
        if not (s.weight > 0 and math.isfinite(s.weight)):
            raise ConfigError(f"data.sources[{i}].weight must be a finite number > 0, got {s.weight}")
        if s.size < 0:
            raise ConfigError(f"data.sources[{i}].size must be >= 0 (0 = data.size), got {s.size}")
        if s.verifier:
            from rlvr.rewards import VERIFIERS

            _registered(f"data.sources[{i}].verifier", s.verifier, VERIFIERS)
        names.append(source_name(s))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"data.sources: the name {repeated[0]!r} is used twice; give the sources distinct "
                          "`name`s (they key the per-source metrics and the sampler state)")
    if not 0 <= d.weakness_floor <= 1 or not 0 < d.weakness_smoothing <= 1 or not 0 <= d.weakness_prior <= 1:
        raise ConfigError(f"data.weakness_floor and data.weakness_prior must be in [0, 1] and weakness_smoothing in "
                          f"(0, 1], got {d.weakness_floor}, {d.weakness_prior}, {d.weakness_smoothing}")
    if d.sampling == "weakness" and d.weakness_floor == 0:
        raise ConfigError("data.weakness_floor = 0 would never sample a prompt once every completion solves it "
                          "(starved); use a floor > 0 (default 0.1)")
    if d.skip_solved < 0:
        raise ConfigError(f"data.skip_solved must be >= 0 (visits; 0 = off), got {d.skip_solved}")
    if not 0 < d.min_active <= 1:
        raise ConfigError(f"data.min_active must be in (0, 1] (the share of prompts kept in play), got "
                          f"{d.min_active}")


def source_name(s: SourceConfig) -> str:
    """The name of a data.sources entry: its ``name``, else the reasoning_gym task or the file / folder stem."""
    if s.name:
        return s.name
    location = s.source.split(":", 1)[1] if ":" in s.source else s.source
    return Path(location.rstrip("/")).stem or location


# ----------------------------------------------------------------------------------------------------------
# cascaded stages

STAGE_SECTIONS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name not in ("output_dir", "stages"))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on ``base``: mappings merge key by key, anything else (lists too) is replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def stage_configs(cfg: RunConfig) -> list[tuple[str, RunConfig]]:
    """(name, config) of each of ``cfg.stages``: the stage's sections applied on the base config (everything but
    ``stages``). Mappings merge key by key; lists are replaced. A stage whose ``algorithm`` names another preset
    starts from that preset (with the stage's own keys); otherwise its algorithm keys change the base's. A stage
    that sets data.source or data.sources replaces the base's data source(s) (a mixture replaces a single source).
    ``trainer.steps`` of a stage counts that stage's steps. ConfigError names the stage on any problem."""
    base = {k: v for k, v in to_dict(cfg).items() if k != "stages"}
    out, seen = [], set()
    for i, raw in enumerate(cfg.stages):
        where = f"stages[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping with a name and config sections, got {raw!r}")
        name = raw.get("name")
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ConfigError(f"{where}.name: a non-empty name of letters, digits, '-', '_' or '.' is required "
                              f"(it names the stage's folder), got {name!r}")
        if name in seen:
            raise ConfigError(f"{where}.name: {name!r} is used by an earlier stage")
        seen.add(name)
        over = {k: v for k, v in raw.items() if k != "name"}
        for key in over:
            if key not in STAGE_SECTIONS and KEY_ALIASES.get(key) not in STAGE_SECTIONS:
                hint = closest(str(key), list(STAGE_SECTIONS))
                raise ConfigError(f"{where} ({name}): {key!r} is not a section a stage can set"
                                  + (f"; did you mean {hint!r}?" if hint else "") + " (output_dir and stages "
                                  "belong to the whole run)")
        algo = over.get("algorithm")
        if isinstance(algo, str):
            algo = over["algorithm"] = {"name": algo}
        tree = dict(base)
        if isinstance(algo, dict) and algo.get("name", base["algorithm"]["name"]) != base["algorithm"]["name"]:
            tree["algorithm"] = {}  # another preset: start from it, not from the base's values
        data = over.get("data")
        if isinstance(data, dict) and ("source" in data or "sources" in data):  # one source or a mixture, not both
            tree["data"] = {**base["data"], "source": data.get("source", ""), "sources": data.get("sources", [])}
        try:
            stage = config_from_dict(_merge(tree, over))
        except ConfigError as err:
            raise ConfigError(f"{where} ({name}): {err}") from None
        if stage.checkpoint.resume not in ("auto", "never"):
            raise ConfigError(f"{where} ({name}): checkpoint.resume must be auto or never with stages (each stage "
                              f"resumes from its own folder), got {stage.checkpoint.resume!r}")
        out.append((name, stage))
    return out


def _validate_critic(cfg: RunConfig) -> None:
    c, a = cfg.critic, cfg.algorithm
    on = bool(c.path) or c.shared
    if a.advantage == "gae" and not on:
        raise ConfigError("algorithm.advantage gae (PPO) needs a critic: set critic.path (a model folder) or "
                          "critic.shared: true (a value head on the policy)")
    if not on:
        return
    if c.path and c.shared:
        raise ConfigError("critic.path (a separate critic) and critic.shared (a head on the policy) exclude each "
                          "other: set one")
    if a.advantage != "gae":
        raise ConfigError(f"a critic is configured but algorithm.advantage is {a.advantage!r}, which does not read "
                          "its values: use advantage gae (the ppo preset) or remove critic.path / critic.shared")
    if cfg.distributed.backend == "ray":
        raise ConfigError("a critic (PPO) trains in one process for now, not on Ray trainer ranks "
                          "(distributed.backend: ray)")
    if c.shared and c.lora.enabled:
        raise ConfigError("critic.lora applies to a separate critic (critic.path); a shared head follows "
                          "model.lora")
    if not c.lr > 0 or not c.value_coef > 0:
        raise ConfigError(f"critic.lr and critic.value_coef must be > 0, got {c.lr} and {c.value_coef}")
    if c.clip_value < 0 or c.weight_decay < 0:
        raise ConfigError(f"critic.clip_value and critic.weight_decay must be >= 0, got {c.clip_value} and "
                          f"{c.weight_decay}")
    if not 0 <= c.warmup_steps < cfg.trainer.steps:
        raise ConfigError(f"critic.warmup_steps must be in [0, trainer.steps = {cfg.trainer.steps}) (the policy "
                          f"would never train), got {c.warmup_steps}")
    for key in ("gamma", "lam"):
        if not 0 <= getattr(a, key) <= 1:
            raise ConfigError(f"algorithm.{key} must be in [0, 1], got {getattr(a, key)}")
    if c.lora.enabled and (c.lora.r <= 0 or c.lora.alpha <= 0):
        raise ConfigError(f"critic.lora.r and critic.lora.alpha must be > 0, got r={c.lora.r}, alpha={c.lora.alpha}")


def _check_user_reward(key: str, path: str, function: str) -> None:
    """Import a ``file.py:function`` reward now (before any model loads): a one-line ConfigError when the file
    does not import or has no such function."""
    from rlvr.rewards.user import load_module_from_file

    try:
        module = load_module_from_file(path)
    except SyntaxError as err:
        raise ConfigError(f"{key}: importing {path} failed: SyntaxError: {err.msg} (line {err.lineno})") from None
    except BaseException as err:  # noqa: BLE001 - ImportError, a raise at import time, even SystemExit
        if isinstance(err, KeyboardInterrupt):
            raise
        line = ""
        tb = err.__traceback__
        while tb is not None:  # the deepest frame inside the reward file
            if Path(tb.tb_frame.f_code.co_filename).resolve() == Path(path).expanduser().resolve():
                line = f" (line {tb.tb_lineno})"
            tb = tb.tb_next
        msg = str(err).splitlines()[0] if str(err) else ""
        raise ConfigError(f"{key}: importing {path} failed: {type(err).__name__}: {msg}{line}"[:400]) from None
    fn = getattr(module, function, None)
    if not callable(fn):
        names = [k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
        raise ConfigError(f"{key}: {path} has no function {function!r} (functions: {', '.join(names) or 'none'})")

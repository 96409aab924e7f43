"""PPO's critic: V(s_t) for every response token, its optimizer, and its checkpoint.

    critic = Critic(cfg, policy, device, dtype, resume=None)       # critic.path or critic.shared
    old_values = critic.values(policy, batch, micros, device, forward)         # (B, T), no grad, before the update
    metrics = critic.train_mini(batch, mini, micros, device, forward)          # a separate critic's optimizer step

Two kinds (docs/algorithms.md, "PPO with a critic"):

- **separate** (``critic.path``): its own transformer, loaded with ``AutoModelForTokenClassification(num_labels=1)``.
  From a causal LM folder the LM head is dropped and a scalar head ``score`` is added (verl's and OpenRLHF's
  critic); a saved critic folder loads as it is. Optional LoRA (``critic.lora``: the adapters and the head train).
  It runs the policy's micro-batches (padded or packed rows), with its own forward/backward and optimizer step
  after the policy's, per mini-batch. Saved HF-loadable in ``<checkpoint>/critic/``.
- **shared** (``critic.shared``): a Linear(hidden, 1) head on the policy's last hidden state (after the final norm,
  the LM head's input). The value loss is added to the policy loss of the same forward, so one backward trains the
  head (its own optimizer and lr) and, through the backbone, the policy (the policy's optimizer). During
  ``critic.warmup_steps`` the head reads a detached hidden state: the policy does not move. Saved as
  ``<checkpoint>/critic/value_head.safetensors``.

V(s_t) is read at the column that predicts response token t (the prompt and the tokens before t), like the
policy's log-prob of token t. The head's output has one channel, so no vocabulary-sized tensor exists and the
policy's log-prob chunking has nothing to chunk here.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import torch

from rlvr.algorithms.value import value_loss
from rlvr.config import ConfigError, RunConfig
from rlvr.trainer import state as ckpt
from rlvr.trainer.batch import RolloutBatch
from rlvr.trainer.optim import make_optimizer
from rlvr.trainer.policy import _call, disable_dropout, model_path

log = logging.getLogger("rlvr")

CRITIC_DIR = "critic"
VALUE_HEAD_FILE = "critic/value_head.safetensors"  # in a subfolder: vLLM loads every *.safetensors beside the policy's


def load_critic_model(cfg: RunConfig, device: torch.device, dtype: torch.dtype, vocab_size: int):
    """A separate critic: ``AutoModelForTokenClassification`` with one label from ``critic.path`` (LoRA adapters
    per critic.lora). Its vocabulary must be the policy's (it reads the policy's token ids)."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    c = cfg.critic
    path = model_path(c.path, "critic.path")
    config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
    if getattr(config, "vocab_size", vocab_size) != vocab_size:
        raise ConfigError(f"critic.path: {c.path} has a vocabulary of {config.vocab_size} tokens, the policy "
                          f"{vocab_size}: the critic reads the policy's token ids, so it needs the same tokenizer")
    config.num_labels = 1
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            path, config=config, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code)
    except ValueError as err:  # no token-classification class for this architecture
        raise ConfigError(f"critic.path: transformers has no token-classification (value head) class for "
                          f"{type(config).__name__} ({' '.join(str(err).split())[:200]})") from None
    model.to(device)
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if c.lora.enabled:
        from peft import LoraConfig, get_peft_model

        targets = c.lora.target_modules
        model = get_peft_model(model, LoraConfig(
            r=c.lora.r, lora_alpha=c.lora.alpha, lora_dropout=0.0, task_type="TOKEN_CLS",
            target_modules=targets[0] if targets == ["all-linear"] else targets, modules_to_save=["score"]))
    disable_dropout(model)
    model.train()
    return model


def critic_values(model, batch: RolloutBatch, rows, pack, device, forward=None) -> tuple[torch.Tensor, int]:
    """A separate critic's V(s_t) for one micro-batch: (len(rows), width) float32 (with grad when enabled), and
    width. ``pack``: a `rlvr.trainer.batch.Packed` micro-batch, or None for padded rows (batch.model_inputs)."""
    run = forward or _call
    if pack is None:
        ids, mask, width = batch.model_inputs(rows, device)
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = run(model, input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).logits
        return out[:, -width - 1 : -1, 0].float(), width
    out = run(model, input_ids=pack.input_ids, position_ids=pack.position_ids, use_cache=False).logits[..., 0]
    v = out[pack.src_row, pack.src_col - 1].float()  # the column before a response token holds its state
    return v.new_zeros(pack.out_shape).index_put((pack.dst_row, pack.dst_col), v), pack.out_shape[1]


class Critic:
    """The critic of a PPO run (module docstring). ``shared``: a head on ``policy``; else ``model``."""

    def __init__(self, cfg: RunConfig, policy: torch.nn.Module, device: torch.device, dtype: torch.dtype,
                 resume: Path | None = None, saved: dict | None = None):
        c, t = cfg.critic, cfg.trainer
        self.cfg, self.shared = cfg, c.shared
        self.model = self.head = None
        if self.shared:
            hidden = policy.config.get_text_config().hidden_size
            self.head = torch.nn.Linear(hidden, 1).to(device)  # float32 (hidden states are cast to it)
            self.head.weight.data.normal_(0.0, 1.0 / (hidden + 1))  # OpenRLHF's value head init: V ~ 0 at first
            self.head.bias.data.zero_()
            module = self.head
        else:
            self.model = load_critic_model(cfg, device, dtype, policy.config.get_text_config().vocab_size)
            module = self.model
        if resume is not None and saved is not None:
            self._load_weights(resume)
        settings = copy.copy(t)
        settings.lr, settings.weight_decay = c.lr, c.weight_decay
        self.optimizer, self.scheduler = make_optimizer(module.parameters(), settings,
                                                        t.steps * t.epochs * t.mini_batches)
        if saved is not None:
            ckpt.load_optimizer_state(module, self.optimizer, saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
        self.module = module

    # ------------------------------------------------------------------ values
    def head_values(self, hidden: torch.Tensor, detach: bool = False) -> torch.Tensor:
        """A shared critic: (b, t, H) last hidden states -> (b, t) float32 values (``detach``: the head only
        learns, the backbone gets no gradient: critic warm-up)."""
        h = hidden.detach() if detach else hidden
        return self.head(h.float()).squeeze(-1)

    @torch.no_grad()
    def values(self, batch: RolloutBatch, micros, device, forward=None, shared_forward=None) -> torch.Tensor:
        """V(s_t) of every response token before the update: (B, T) float32, 0 outside the responses.
        micros: [(rows, Packed or None)], as the update's. A shared head needs ``shared_forward(rows, pack) ->
        (values, width)``: the policy's forward with this head (update.py)."""
        b, t = batch.response_ids.shape
        out = torch.zeros(b, t)
        was = self.module.training
        self.module.eval()
        try:
            for rows, pack in micros:
                if self.shared:
                    v, width = shared_forward(rows, pack)
                else:
                    v, width = critic_values(self.model, batch, rows, pack, device, forward)
                out[rows, :width] = v.cpu()
        finally:
            self.module.train(was)
        return out.masked_fill(~batch.response_mask, 0.0)

    # ------------------------------------------------------------------ training
    def loss(self, values: torch.Tensor, batch: RolloutBatch, rows, width: int, num_tokens: int, device):
        """value_coef x the clipped value loss of one micro-batch (normalised by the mini-batch's ``num_tokens``),
        and its metrics."""
        cut = lambda x: x[rows][:, :width].to(device)  # noqa: E731
        loss, m = value_loss(values, cut(batch.old_values), cut(batch.returns), cut(batch.response_mask),
                             clip_value=self.cfg.critic.clip_value, num_tokens=num_tokens)
        return self.cfg.critic.value_coef * loss, {"value_loss": loss.detach(), **m}

    def step(self) -> dict[str, float]:
        """Clip the critic's gradient and step its optimizer and schedule (skipped when non-finite)."""
        params = [p for p in self.module.parameters() if p.requires_grad]
        norm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.trainer.max_grad_norm or math.inf))
        if math.isfinite(norm):
            self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"critic/grad_norm": norm, "critic/skipped": float(not math.isfinite(norm))}

    def train_mini(self, batch: RolloutBatch, mini: torch.Tensor, micros, device, forward=None) -> dict[str, float]:
        """A separate critic's forward/backward over the mini-batch's micro-batches, then its optimizer step.
        Returns the mini-batch's critic metrics (value loss = the mini-batch's token mean)."""
        tokens = max(int(batch.response_mask[mini].sum()), 1)
        self.optimizer.zero_grad(set_to_none=True)
        sums = {"critic/value_loss": 0.0, "critic/value_clip_frac": 0.0}
        for rows, pack in micros:
            v, width = critic_values(self.model, batch, rows, pack, device, forward)
            loss, m = self.loss(v, batch, rows, width, tokens, device)
            loss.backward()
            sums["critic/value_loss"] += float(m["value_loss"])  # each already divided by the mini's tokens
            share = int(batch.response_mask[rows].sum()) / tokens
            sums["critic/value_clip_frac"] += float(m["value_clip_frac"]) * share
        return {**sums, **self.step()}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Optimizer (keyed by parameter name) and schedule: the ``critic`` entry of trainer_state.pt."""
        return {"optimizer": ckpt.full_optimizer_state(self.module, self.optimizer),
                "scheduler": self.scheduler.state_dict()}

    def save(self, folder: Path) -> None:
        """The critic's weights into a checkpoint folder: ``critic/`` (HF-loadable: AutoModelForTokenClassification,
        or a peft adapter) or ``critic/value_head.safetensors`` (shared)."""
        if self.shared:
            from safetensors.torch import save_file

            (folder / VALUE_HEAD_FILE).parent.mkdir(exist_ok=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()},
                      str(folder / VALUE_HEAD_FILE))
        else:
            self.model.save_pretrained(folder / CRITIC_DIR, safe_serialization=True)

    def _load_weights(self, resume: Path) -> None:
        if self.shared:
            from safetensors.torch import load_file

            self.head.load_state_dict(load_file(str(resume / VALUE_HEAD_FILE)))
        else:
            ckpt.load_policy_weights(self.model, resume / CRITIC_DIR)

"""Reward names → how to build them, so a config file can name rewards without importing code.

Each factory takes the term's ``options`` and the shared ``Context`` (one judge HTTP client per
server, reused by every judge on it). Imports are lazy: a geometry-only config needs neither
open_clip nor httpx.
"""

from __future__ import annotations

from typing import Any, Callable

from .base import Reward, RewardConfigError

Factory = Callable[[dict, "Context"], Reward]
_FACTORIES: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    def deco(fn: Factory) -> Factory:
        _FACTORIES[name] = fn
        return fn

    return deco


def available() -> list[str]:
    return sorted(_FACTORIES)


def build(name: str, options: dict[str, Any], context: "Context") -> Reward:
    if name not in _FACTORIES:
        raise RewardConfigError(f"unknown reward '{name}'; available: {', '.join(available())}")
    try:
        return _FACTORIES[name](dict(options), context)
    except TypeError as e:  # an unknown option for that reward
        raise RewardConfigError(f"reward '{name}': {e}") from e


class Context:
    """Resources shared by the rewards of one ensemble: judge clients keyed by server URL."""

    def __init__(self, judge: dict[str, Any] | None = None) -> None:
        self.judge_options = dict(judge or {})
        self._clients: dict[str, Any] = {}
        self._served: dict[str, set[str]] = {}  # base_url → served model names the rewards use

    def judge_client(self, base_url: str | None = None, model: str | None = None, default_url: str | None = None):
        """The client for a judge: the term's ``base_url``, else ``[rewards.judge].base_url``,
        else the judge's default port from ``vllm_serve`` (one model per vLLM server)."""
        from .judge_client import JudgeClient, JudgeConfig

        options = dict(self.judge_options)
        base_url = base_url or options.get("base_url") or default_url
        if base_url:
            options["base_url"] = base_url
        config = JudgeConfig(**options)
        if config.base_url not in self._clients:
            self._clients[config.base_url] = JudgeClient(config)
        if model:
            self._served.setdefault(config.base_url, set()).add(model)
        return self._clients[config.base_url]

    def health_check(self) -> None:
        for url, client in self._clients.items():
            client.health_check(sorted(self._served.get(url, ())))

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


# -- HPS ---------------------------------------------------------------------------------------


@register("hps")
def _hps(options: dict, context: Context) -> Reward:
    from .hps import HPSConfig, HPSv21

    return HPSv21(HPSConfig(**options))


# -- VLM judges over an OpenAI-compatible API (vllm serve) ---------------------------------------


def _judge(class_name: str) -> Factory:
    def factory(options: dict, context: Context) -> Reward:
        from . import judges

        cls = getattr(judges, class_name)
        client = context.judge_client(
            options.pop("base_url", None), options.get("model") or cls.default_model, cls.default_base_url
        )
        return cls(client=client, **options)

    return factory


for _name, _cls in {
    "unified_alignment": "UnifiedAlignment",
    "unified": "UnifiedReward2",
    "category": "CategoryConsistency",
    "cmt": "ColourMaterialTexture",
    "part": "PartCompleteness",
}.items():
    register(_name)(_judge(_cls))


# -- geometry (no weights) ----------------------------------------------------------------------


def _geometry(class_name: str, config_name: str) -> Factory:
    def factory(options: dict, context: Context) -> Reward:
        from . import geometry

        return getattr(geometry, class_name)(getattr(geometry, config_name)(**options))

    return factory


for _name, (_cls, _cfg) in {
    "geometry.watertight": ("Watertight", "WatertightConfig"),
    "geometry.single_part": ("SinglePart", "PartsConfig"),
    "geometry.fill": ("FillFraction", "FillConfig"),
    "geometry.not_flat": ("NotFlat", "NotFlatConfig"),
    "geometry.silhouette": ("SilhouetteConsistency", "SilhouetteConfig"),
}.items():
    register(_name)(_geometry(_cls, _cfg))


# -- the procedural demo model ----------------------------------------------------------------


@register("procedural.family")
def _family(options: dict, context: Context) -> Reward:
    from .procedural import FamilyMatch

    return FamilyMatch(**options)


@register("procedural.attributes")
def _attributes(options: dict, context: Context) -> Reward:
    from .procedural import AttributeMatch

    return AttributeMatch(**options)


@register("procedural.attributes_strict")
def _attributes_strict(options: dict, context: Context) -> Reward:
    from .procedural import AttributeMatch

    return AttributeMatch(strict=True, **options)


@register("procedural.quality")
def _quality(options: dict, context: Context) -> Reward:
    from .procedural import MeshQuality

    return MeshQuality(**options)

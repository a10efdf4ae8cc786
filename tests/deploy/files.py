"""Readers for the deployment files, just enough for the static checks of tests/deploy."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import patch

import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]
_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                values[key] = value
        return values

    def copies(self) -> list[tuple[dict[str, str], list[str], str]]:
        """(flags, sources, destination) of every COPY."""
        result = []
        for args in self.all("COPY"):
            words = shlex.split(args)
            flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
            paths = [w for w in words if not w.startswith("--")]
            result.append((flags, paths[:-1], paths[-1]))
        return result

    def exec_form(self, keyword: str) -> list[str]:
        """The last ``keyword`` (CMD, HEALTHCHECK's CMD) in exec form, as a list."""
        args = self.all(keyword)[-1]
        return json.loads(args[args.index("[") :])


def dockerfile_lines(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    joined, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or (line.startswith("#") and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def dockerfile_stages(path: Path = ROOT / "Dockerfile") -> dict[str, Stage]:
    lines = dockerfile_lines(path)
    args = {}
    for kw, rest in lines:
        if kw == "FROM":
            break
        if kw == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for kw, rest in lines:
        if kw == "FROM":
            words = rest.split()
            base = _VAR.sub(lambda m: args.get(m.group(1), ""), words[0])
            current = Stage(words[2] if len(words) > 2 else str(len(stages)), base)
            stages[current.name] = current
        elif current is not None:
            current.instructions.append((kw, rest))
    return stages


def dockerignored(relative: str, path: Path = ROOT / ".dockerignore") -> bool:
    """Whether .dockerignore keeps ``relative`` out of the build context (last match wins)."""
    ignored = False
    for raw in path.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = Path(relative).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(p, pattern[3:]) for p in parts)
        else:
            hit = any(fnmatch.fnmatch(p, pattern) for p in prefixes)
        if hit:
            ignored = not negate
    return ignored


class _ComposeLoader(yaml.SafeLoader):
    """PyYAML's safe loader plus Compose's merge-control tags (``!reset``, ``!override``)."""


@dataclass(frozen=True)
class Tagged:
    tag: str
    value: Any


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Tagged:
    if isinstance(node, yaml.MappingNode):
        value: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)  # type: ignore[arg-type]
    return Tagged(node.tag, value)


for _tag in ("!reset", "!override"):
    _ComposeLoader.add_constructor(_tag, _tagged)


def load_compose(name: str) -> dict[str, Any]:
    return yaml.load((ROOT / name).read_text(), Loader=_ComposeLoader)  # noqa: S506 (a safe loader)


_REMOVED = object()


def merge_compose(base: Any, override: Any) -> Any:
    """Compose's merge of an override file: mappings merge, ``!reset`` removes, the rest replaces."""
    if isinstance(override, Tagged):
        return _REMOVED if override.tag == "!reset" else override.value
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge_compose(base.get(key), value)
        return {k: v for k, v in merged.items() if v is not _REMOVED}
    return override


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """``${VAR}`` / ``${VAR:-default}`` as compose fills them (from ``env``, else the default)."""
    env = env or {}
    return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), text)


def env_file(path: Path = ROOT / ".env.example") -> tuple[dict[str, str], dict[str, str]]:
    """(variables set, variables shown commented out as ``# NAME=value``)."""
    active, commented = {}, {}
    for raw in path.read_text().splitlines():
        match = re.fullmatch(r"(#\s*)?([A-Z][A-Z0-9_]*)=(.*)", raw.strip())
        if match:
            (commented if match.group(1) else active)[match.group(2)] = match.group(3).strip()
    return active, commented


def settings_from(env: dict[str, str]) -> Settings:
    """The service's settings as a container with these environment variables reads them."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    with patch.dict(os.environ, {**clean, **env}, clear=True):
        return Settings()

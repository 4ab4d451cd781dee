"""One registry helper for every plugin group (devices, predictors, spaces, searchers).

Built-in plugins register with the :meth:`Registry.register` decorator when their
module is imported; third-party packages add entries to the same Python
entry-point group (for example ``[project.entry-points."nas.spaces"]``) and are
found without editing hwprof.
"""

from __future__ import annotations

import fnmatch
import importlib
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, TypeVar

from hwprof.errors import HwprofError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> factory map for one plugin group.

    Args:
        group: Entry-point group name, e.g. ``"nas.spaces"``.
        kind: Human name of the plugin kind, used in error messages.
        builtin_modules: Modules imported on first use so that their
            ``@register`` decorators run.
        list_command: The CLI command that lists valid names, for hints.
    """

    def __init__(
        self,
        group: str,
        kind: str,
        builtin_modules: tuple[str, ...] = (),
        list_command: str = "",
    ) -> None:
        self.group = group
        self.kind = kind
        self._builtin_modules = builtin_modules
        self._list_command = list_command
        self._factories: dict[str, Callable[..., T]] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering a factory (class or function) under ``name``."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            return factory

        return decorator

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)
        for ep in entry_points(group=self.group):
            if ep.name in self._factories:
                continue  # built-ins are declared as entry points too
            try:
                self._factories[ep.name] = ep.load()
            except Exception as exc:  # a broken third-party plugin must not break hwprof
                self._factories[ep.name] = _broken_plugin(ep.name, self.kind, exc)

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a glob pattern, sorted."""
        self._load()
        return sorted(n for n in self._factories if fnmatch.fnmatch(n, pattern))

    def summaries(self) -> list[dict[str, Any]]:
        """``{"name", "description"}`` of every plugin, sorted by name (the first line of its docstring)."""
        rows = []
        for name in self.names():
            doc = (self.factory(name).__doc__ or "").strip()
            rows.append({"name": name, "description": doc.splitlines()[0].replace("``", "") if doc else ""})
        return rows

    def factory(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``.

        Raises:
            HwprofError: if no plugin has that name.
        """
        self._load()
        try:
            return self._factories[name]
        except KeyError:
            hint = f"choose one of: {', '.join(self.names())}"
            if self._list_command:
                hint += f" (see `{self._list_command}`)"
            raise HwprofError(f"unknown {self.kind} '{name}'", hint) from None

    def create(self, name: str, **kwargs: Any) -> T:
        """Instantiate the plugin registered under ``name``.

        Raises:
            HwprofError: for a setting the plugin does not take, or a value of the
                wrong kind for one whose default is a number or a flag.
        """
        factory = self.factory(name)
        check_settings(factory, kwargs, f"{self.kind} '{name}'")
        return factory(**kwargs)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._factories


def check_settings(factory: Callable[..., Any], settings: dict[str, Any], what: str) -> None:
    """Refuse settings ``factory`` does not take, or whose kind contradicts its default (``population=abc``).

    Raises:
        HwprofError: naming the setting and what the factory takes.
    """
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature: let it judge for itself
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    names = [n for n, p in params.items() if n != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL]
    for key, value in settings.items():
        if key not in params:
            raise HwprofError(f"{what} has no setting '{key}'", f"it takes: {', '.join(names) or 'none'}")
        default = params[key].default
        if default is inspect.Parameter.empty or default is None or value is None:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and isinstance(default, int) and not isinstance(value, int):
                ok = float(value).is_integer()
        else:
            continue
        if not ok:
            raise HwprofError(f"{what}: setting '{key}' needs a {type(default).__name__} like {default!r}, "
                              f"got {value!r}", f"e.g. --param {key}={str(default).lower()}")


def _broken_plugin(name: str, kind: str, exc: Exception) -> Callable[..., Any]:
    def fail(**_: Any) -> Any:
        raise HwprofError(
            f"the {kind} plugin '{name}' failed to load: {exc}",
            "reinstall or remove the package that provides it",
        )

    return fail


# --- the plugin groups ----------------------------------------------------------------

SPACES: Registry = Registry(
    "nas.spaces", "search space",
    builtin_modules=("nas.spaces.ofa", "nas.spaces.proxyless", "nas.spaces.resnet",
                     "nas.spaces.fbnet", "nas.spaces.s3nas", "nas.spaces.hurricane", "nas.spaces.ofa_width"),
    list_command="nas spaces")

DEVICES: Registry = Registry(
    "hwprof.devices", "device",
    builtin_modules=("devices.cpu", "devices.gpu", "devices.simulated"),
    list_command="hwprof devices")

PREDICTORS: Registry = Registry(
    "hwprof.predictors", "predictor",
    builtin_modules=("hwprof.predictors.linear", "hwprof.predictors.lut", "hwprof.predictors.kernel_rf",
                     "hwprof.predictors.gbm", "hwprof.predictors.transfer"),
    list_command="hwprof predictors")

SEARCHERS: Registry = Registry(
    "nas.searchers", "searcher",
    builtin_modules=("nas.searchers.random_search", "nas.searchers.evolutionary", "nas.searchers.hurricane",
                     "nas.searchers.single_path"),
    list_command="nas searchers")

ESTIMATORS: Registry = Registry(
    "nas.estimators", "accuracy estimator",
    builtin_modules=("nas.accuracy.proxies", "nas.accuracy.predictor", "nas.accuracy.train"),
    list_command="nas estimators")

EXECUTORS: Registry = Registry(
    "hwprof.executors", "executor",
    builtin_modules=("hwprof.executors.local", "hwprof.executors.ray_executor"),
    list_command="")

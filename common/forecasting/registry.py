"""Model versions in the artifact store and the production pointer.

    models/<name>/<version>/model.ubj (+ model_p10.ubj, model_p90.ubj)
    models/<name>/<version>/metadata.json   written last: its presence marks a whole version
    models/<name>/<version>/report.png
    models/<name>/production.json           {"version", "promoted_at", "run_id", ...}

The documents are the models of `common.forecasting.versions` (ModelMetadata,
ProductionPointer), parsed here for every reader.

Each forecast target has its own model, named by `model_name_for` (the default target keeps
AIRCAST_MODEL_NAME, so a deployment that adds targets keeps its production model).

The pointer moves only by compare-and-swap on the generation read before the gate ran, so
two trainers racing never both win and a loser leaves production as the winner set it.
Predict and the api keep the loaded production model per warm instance and reload only when
the pointer's generation changes (one cheap metadata read per call).
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from common.core.errors import Conflict
from common.core.timeutil import UTC
from common.forecasting.versions import (
    METADATA_FILE,
    ModelMetadata,
    ProductionPointer,
    pointer_key,
    version_key,
    version_prefix,
)
from common.storage import ArtifactStore
from common.storage.base import GenerationMismatch, ObjectMissing, StoreError

if TYPE_CHECKING:
    from common.core.config import Settings
    from common.forecasting.model import ForecastModel


def model_name_for(model_name: str, target: str, default_target: str) -> str:
    """The registry name of `target`'s model: AIRCAST_MODEL_NAME for the default target,
    `<model_name>-<target>` for the others (a model name has no '-', so never a clash)."""
    return model_name if target == default_target else f"{model_name}-{target}"


@dataclass
class Loaded:
    version: str
    model: ForecastModel
    metadata: ModelMetadata
    generation: int


class Registry:
    def __init__(self, store: ArtifactStore, model_name: str) -> None:
        self.store = store
        self.name = model_name
        self.prefix = version_prefix(model_name)
        self.pointer = pointer_key(model_name)

    @classmethod
    def of_target(cls, store: ArtifactStore, settings: Settings, target: str) -> Registry:
        """The registry of `target`'s model in this deployment."""
        return cls(store, model_name_for(settings.model_name, target, settings.default_target))

    def key(self, version: str, file: str) -> str:
        return version_key(self.name, version, file)

    def exists(self, version: str) -> bool:
        return self.store.exists(self.key(version, METADATA_FILE))

    def save(
        self, version: str, model: ForecastModel, metadata: ModelMetadata, report: bytes | None
    ) -> None:
        """Write a version; metadata.json goes last so a reader never sees half a version."""
        for file, data in model.to_files().items():
            self.store.put(self.key(version, file), data)
        if report is not None:
            self.store.put(self.key(version, "report.png"), report, "image/png")
        self.save_metadata(metadata)

    def save_metadata(self, metadata: ModelMetadata) -> None:
        """(Re)write a version's metadata.json (a re-run records its new gate decision)."""
        self.store.put_json(self.key(metadata.version, METADATA_FILE), metadata.to_json())

    def metadata(self, version: str) -> ModelMetadata:
        """A version's metadata; a document that does not parse is the store's fault (500)."""
        data = self.store.get(self.key(version, METADATA_FILE))
        try:
            return ModelMetadata.model_validate_json(data)
        except ValidationError as exc:
            raise StoreError(f"model {self.name} {version}: unreadable metadata: {exc}") from None

    def load(self, version: str) -> tuple[ForecastModel, ModelMetadata]:
        from common.forecasting.model import ForecastModel

        try:
            meta = self.metadata(version)
            files = {f: self.store.get(self.key(version, f)) for f in meta.model.files.values()}
        except ObjectMissing as exc:  # a version the pointer or a run relies on: ours to fix (500)
            raise StoreError(f"model {self.name} {version} is incomplete: {exc}") from None
        return ForecastModel.from_files(files, meta.model.to_json()), meta

    def production(self) -> tuple[ProductionPointer | None, int]:
        """(pointer, generation); (None, 0) when nothing is in production."""
        try:
            data, gen = self.store.get_with_generation(self.pointer)
        except ObjectMissing:
            return None, 0
        try:
            return ProductionPointer.model_validate_json(data), gen
        except ValidationError as exc:
            raise StoreError(f"production pointer of {self.name}: unreadable: {exc}") from None

    def promote(
        self,
        version: str,
        expected_generation: int,
        run_id: str | None = None,
        mae: float | None = None,
    ) -> int:
        """Point production at `version` if the pointer is still at `expected_generation`."""
        pointer = ProductionPointer(
            version=version, promoted_at=dt.datetime.now(UTC), run_id=run_id, mae=mae
        )
        try:
            return self.store.put_json_if_generation(
                self.pointer, pointer.to_json(), expected_generation
            )
        except GenerationMismatch:
            raise Conflict(
                "production pointer changed while this run was deciding (another train run "
                "promoted first); production left as that run set it",
                field="production",
            ) from None

    def load_production(self) -> Loaded:
        """The production model, cached per process until the pointer's generation changes."""
        gen = self.store.generation(self.pointer)
        with _lock:
            hit = _cache.get(self.store, {}).get(self.name)
            if hit is not None and hit.generation == gen and gen:
                return hit
        pointer, gen = self.production()
        if pointer is None:
            raise Conflict(
                f"no model in production for {self.name!r}: run train first", field="model"
            )
        model, meta = self.load(pointer.version)
        loaded = Loaded(pointer.version, model, meta, gen)
        with _lock:
            _cache.setdefault(self.store, {})[self.name] = loaded
        return loaded


# Per store object, then model name. Weak keys: an entry dies with its store, so a later
# store can never be served it (an id() key could be reused, and generations of a new local
# store start again at 1).
_cache: weakref.WeakKeyDictionary[ArtifactStore, dict[str, Loaded]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()

"""The files a run reads, named by options: checked before a run starts, so the form
and the command line say what is missing before anything is built.

Relative paths start from the current directory, as the run's loaders read them;
the loaders (custom model files, starting weights, a teacher export) raise the
same message when a file has gone since.
"""

from __future__ import annotations

from pathlib import Path

from engine.show import show

# key -> (the file its value names, or None for a value that names none; what to give)
FILE_KEYS = {
    "model.arch": (lambda v: v[len("custom:"):] if v.startswith("custom:") else None,
                   "the path of a .py file exposing build_model(input_shape, num_outputs)"),
    "model.init": (lambda v: v if v.endswith(".safetensors") else None,
                   "a run id, or a .safetensors file written by `torchwork export --format "
                   "safetensors` or by `torchwork compress`"),
    "distill.teacher": (lambda v: v if v.endswith(".safetensors") else None,
                        "a run id or a .safetensors file from `torchwork export`"),
    "data.dataset": (lambda v: (v[len("table:"):] if v.startswith("table:")
                                and not v.startswith("table:pkg://") else None),
                     "the path of a .csv, .tsv or .parquet file"),
    "data.test_path": (lambda v: v, "the path of a .csv, .tsv or .parquet file with the "
                                    "training table's columns"),
}

def dataset_name(dataset: str) -> str:
    """A data.dataset as a short name (saved files): a file or folder by its stem."""
    _prefix, sep, rest = dataset.partition(":")
    return (Path(rest).stem or dataset) if sep and rest else dataset


def file_problem(key: str, value: str) -> str | None:
    """Why the file ``value`` of ``key`` names cannot be read, or None (also when it names
    none). Relative paths start from the current directory, as the run's loaders read them."""
    name_of, what = FILE_KEYS[key]
    name = name_of(value)
    if name is None:
        return None
    path = Path(name).expanduser()
    if path.is_file():
        return None
    state = "is not a file" if path.exists() else "not found"
    return f"{key}={show(value)}: {path.resolve()} {state}: give {what}"


# Options whose value names a path: (key, the prefix before the path, the suffix a path
# has); other values name none (a run id, a built-in dataset, a package's table:
# table:pkg://...). Relative ones are found beside the config file that names them.
PATH_KEYS = [("model.arch", "custom:", ""), ("model.init", "", ".safetensors"),
             ("data.dataset", "images:", ""), ("data.dataset", "table:", ""),
             ("data.test_path", "", "")]


def resolve_beside(cfg, config_file: str | Path) -> None:
    """Make the relative paths ``cfg`` names absolute, in place: beside ``config_file`` when
    there, else in the current folder (where the loaders would look). `torchwork run` and
    the window's File ▸ Open do this, so a config file finds its files from any folder, and
    runs store absolute paths that resume from anywhere."""
    for key, prefix, suffix in PATH_KEYS:
        value = cfg.get(key)
        name = value[len(prefix):]
        if not value.startswith(prefix) or not value.endswith(suffix) or not name or \
                name.startswith("pkg://") or not cfg.applies(key):
            continue
        file = Path(name).expanduser()
        if not file.is_absolute():
            beside = Path(config_file).parent / file
            file = beside if beside.exists() else Path.cwd() / file
        cfg.set(key, f"{prefix}{file.resolve()}")

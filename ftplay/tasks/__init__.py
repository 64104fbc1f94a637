"""The tasks a playbook run can fine-tune for, one module each, found by name (the notebooks' TASK).

Adding a task is its module (a `Task` subclass, ftplay/tasks/base.py), its data, and one line here."""
from .. import identity, stages
from ..errors import ConfigError
from .base import Task
from .classify import ClassifyTask
from .reply import ReplyTask

REGISTRY = {}


def register(cls):
    """Make the Task subclass `cls` available as TASK=cls.name; returns it (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Task)) or not cls.name:
        raise TypeError(f"{cls!r} is not a named Task subclass")
    REGISTRY[cls.name] = cls
    return cls


def names():
    """The registered tasks' names, in registration order."""
    return tuple(REGISTRY)


def get(name, **options):
    """The task `name` (a notebook's TASK), unbound (`Task.bind` gives it the run's labels); `options` are the
    notebook parameters it may read (scoring=ScoringConfig, reply_format, max_new_tokens). ConfigError naming
    TASK for an unknown name."""
    if name not in REGISTRY:
        raise ConfigError(f"TASK={name!r} is not a task of the playbook; set TASK to one of "
                          f"{', '.join(map(repr, REGISTRY))}")
    return REGISTRY[name](**options)


def curated(card, **options):
    """The task 02 curated into a run (its record `card`: the task and, for replies, the format), so 03 trains
    what 02 prepared; `options` as for `get`."""
    return get(card.get("task") or stages.CLASSIFY, reply_format=card.get("reply_format") or "house", **options)


def of_adapter(meta, **options):
    """The task an adapter was trained for (its ftplay_adapter.json `meta`: the task and, for replies, the
    format), so 04 scores what 03 trained; `options` as for `get`."""
    return get(identity.adapter_task(meta), reply_format=meta.get("reply_format") or "house", **options)


for _cls in (ClassifyTask, ReplyTask):
    register(_cls)

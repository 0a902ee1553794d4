"""What a spawned process of test_search runs: a module of its own, so the child imports
Optuna's storage alone, not the test module's torch and engine (seconds a child)."""


def open_storage_in_a_process(url, results):
    from engine.experiments.storage import open_storage

    try:
        open_storage(url, 60)
        results.put("ok")
    except Exception as exc:  # the message the command would print
        results.put(str(exc))

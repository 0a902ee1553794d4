"""The efficiency advisor: evidence from a profiler capture, the monitor and the run's
configuration (``evidence``), and small rule functions over it (``rules``).

Both are plain data and pure functions: the command, the window's view and the A/B
runner build on ``build_evidence`` and ``advise`` and hold no rule of their own.
"""

"""Running one upload: the job path from claim to settled outcome.

``runner`` is that path (:class:`core.jobs.runner.JobRunner`: claim -> supervised job
child -> settle -> apply), the one every entry point uses;
``pipeline`` does the work of one upload (fetch, probe, extract, analyse, record,
checkpointed per frame); ``settle`` decides what an attempt's outcome means (status,
degrade level, delay, refund) and is the only place that decides it; ``supervisor`` starts
the job child (``child``) and watches its whole process tree's memory, with the kernel's
memory controller (``cgroup``) where the system offers one.
"""

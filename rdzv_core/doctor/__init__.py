"""``rdzv doctor``: checks a node runs before a launch, one PASS/WARN/FAIL line each.

:mod:`~rdzv_core.doctor.checks` holds the result types (which adapters use
too), :mod:`~rdzv_core.doctor.verdicts` the pure decisions,
:mod:`~rdzv_core.doctor.probes` the network and node probes, and
:mod:`~rdzv_core.doctor.run` puts them in order.
"""

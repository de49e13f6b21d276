"""The lab: simulate or import customers, run journeys over them in-process, report and diff."""

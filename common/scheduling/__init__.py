"""When and where functions run: the one schedule definition, the local Cloud Scheduler and the
local stack of functions it fires at, and running a deployed Cloud Scheduler job.
"""

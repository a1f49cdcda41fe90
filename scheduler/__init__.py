"""The compliance calendar and its jobs. APScheduler 3.11 fires; the database guards.

Guarantees:
- A calendar job runs for each (job, period) at most once to completion: every run first claims a unique
  `scheduler_job_run` row; a second fire, a second scheduler process or a restart finds the claim and stops.
- A run that dies half way leaves its claim with a lease; once the lease expires the next fire takes it over and
  finishes. Each item a job settles has its own unique key in the owning context, so a taken-over run never
  settles an item twice.
- A slot missed while no scheduler ran is run once at the next start (catch-up of past-due calendar events).
- The scheduler owns no rules: jobs call context services.
"""

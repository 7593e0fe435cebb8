"""Work that runs once across every process of a deployment: queued jobs (queue.py: the robot's
answers), periodic jobs (schedule.py, periodic.py: upload cleanup, ended mutes), both claimed
with a lease (lease.py) so that a process that dies mid-way hands its work to another.
See docs/ARCHITECTURE.md, "Work that runs once"."""

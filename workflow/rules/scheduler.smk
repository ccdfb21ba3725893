# One pending wake-up of Snakemake's job scheduler instead of an ever-growing number of them.
#
# Snakemake 9.27's scheduler loop (snakemake.scheduling.job_scheduler) ends every pass that leaves
# a ready job waiting for a free core by starting a timer of the job-rate limiter's timespan
# (--max-jobs-per-timespan, 100/1s by default) that wakes the loop for another pass, which starts
# another timer. A pass woken by anything else (a finished job) starts one more such chain, so
# every finished job adds a wake-up a second that never stops while jobs wait: in the demo the
# loop ran ~113 times a second, each pass checking every waiting job's input files, and the
# Snakemake process took 119 s of CPU (46 s user, 72 s system) from the two cores its training
# jobs run on (bench/README.md, issue 21; upstream: snakemake/snakemake#3955).
#
# One pending wake-up does the same work: a pass that still finds jobs waiting starts the next,
# so the rate limiter is still re-checked every timespan. Jobs that finish or fail wake the loop
# themselves, as before. The timer is a daemon thread, so Snakemake's exit does not wait up to a
# timespan for it. Where Snakemake has no such module or method (another version), nothing is
# changed. tests/test_scheduler.py checks both the cut and that Snakemake still needs it.
import importlib
import threading
import time


def _one_pending_wakeup(module_name, class_name):
    """Replace the scheduler's `_schedule_reevalutation(delay)` (Snakemake's spelling) by one that
    starts no timer while another is due no later than the one asked for."""
    try:
        scheduler_class = getattr(importlib.import_module(module_name), class_name, None)
    except ImportError:
        return
    if not callable(getattr(scheduler_class, "_schedule_reevalutation", None)):
        return
    if getattr(scheduler_class, "_ecg_transfer_one_wakeup", False):
        return  # a second parse of the workflow in the same process
    lock = threading.Lock()

    def _schedule_reevalutation(self, delay):
        due = time.monotonic() + delay
        with lock:
            pending = getattr(self, "_ecg_transfer_wakeup_due", None)
            if pending is not None and pending <= due:
                return
            self._ecg_transfer_wakeup_due = due

        def wake():
            with lock:
                if self._ecg_transfer_wakeup_due == due:
                    self._ecg_transfer_wakeup_due = None
            self._open_jobs.release()

        timer = threading.Timer(delay, wake)
        timer.daemon = True
        timer.start()

    scheduler_class._schedule_reevalutation = _schedule_reevalutation
    scheduler_class._ecg_transfer_one_wakeup = True


_one_pending_wakeup("snakemake.scheduling.job_scheduler", "JobScheduler")

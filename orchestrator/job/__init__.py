"""The job: the protocol a job speaks (``protocol``), the subprocess (``subprocessjob``) and its process group
(``processgroup``: one TERM -> grace -> KILL escalation, leftovers found by run id), the helper jobs import
(``jobkit``) and the bundled sample job."""

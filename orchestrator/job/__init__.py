"""The job: the protocol a job speaks, the subprocess and its process group, the helper jobs import
(``jobkit``) and the bundled sample job."""

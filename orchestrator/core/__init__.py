"""Pure logic and the records that cross every seam: triggers and run outcomes, run records and the saved
state, the schedule, the ETA, missed-run checks, the clock. Nothing here does I/O or imports the rest of the
package; everything takes ``now`` and is tested as a table."""

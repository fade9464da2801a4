"""The fault-injection suite: each test provokes one fault for real (processes, signals, files, sockets) and
checks that nothing is lost and the service keeps working. The README's fault table points here."""

"""All subprocess code lives here: one command (routines), a pipeline into a sink (backups).

API CONTRACT (other modules code against these signatures; keep them):

    run_command(cmd: Exec, *, context: str, verbosity: int,
                cancel: threading.Event | None = None) -> int
        Run one command (routine item). stdin is /dev/null. stdout/stderr go to
        palhm's own streams or /dev/null by cmd.vl_stdout / cmd.vl_stderr (A3.3); a
        tail of stderr is kept for the error message either way. Returns the exit
        status when cmd.ec accepts it, else raises CommandError(context, argv,
        "exited with status N" | "killed by SIGxxx" | "timed out after N s", tail).

    run_pipeline(stages: Sequence[Exec], sink: ObjectSink, *, context: str,
                 verbosity: int, hasher: Hasher | None = None,
                 block_size: int = 1 << 20, cancel: threading.Event | None = None,
                 progress: Callable[[int], None] | None = None) -> PipelineResult
        Stages connected by OS pipes, no shell; first stdin /dev/null; the last
        stage's stdout goes to sink.fileno() directly when hasher is None and the
        sink offers an fd, else it is read in block_size chunks, hashed, and passed
        to sink.write(). Every stage's status judged against its ec; the root
        cause is reported (not an upstream SIGPIPE, SPEC B8). On failure, timeout
        or `cancel` being set: terminate the process group, grace period, kill,
        reap everything. sink.close() is called on success (its size is returned),
        sink.abort() on failure. Raises PipelineError naming `context` + stage
        index/label, BackendError from the sink, Cancelled when cancel was set.
"""

// The bridge between libFuzzer (this process) and a .NET fuzz target calling SharpFuzz's
// Fuzzer.LibFuzzer.Run (a child process).
//
// Why our own: SharpFuzz's docs use the libfuzzer-dotnet driver, which no package registry we
// may use ships (not Debian, not NuGet), and nothing may be downloaded at run time. This file
// implements the same protocol from its description (the SharpFuzz 2.3.0 side, Fuzzer.LibFuzzer):
//   - a System V shared memory segment of 64 KiB coverage map + 1 MiB input, its id in
//     __LIBFUZZER_SHM_ID; the child's instrumented code counts edges into the map;
//   - a control pipe (our int32 input length -> child), its fd in __LIBFUZZER_CONTROL_PIPE_ID;
//   - a status pipe (child -> us: one int32 0 once ready, then per input 0 = fine, else the
//     exception the child printed), its fd in __LIBFUZZER_STATUS_PIPE_ID.
// After each input the map is copied into libFuzzer's extra counters, so libFuzzer sees the
// managed code's coverage as its own. A failed input, or a child that dies (a stack overflow
// ends a .NET process), traps: libFuzzer then saves the input (-artifact_prefix) and fails.
// No code was copied from libfuzzer-dotnet (MIT); only the protocol, which SharpFuzz fixes.
//
// Usage: libfuzzer-dotnet [libFuzzer flags] --target_path=PROGRAM [--target_arg=ARG ...] [CORPUS...]
// (libFuzzer ignores flags that start with "--"). Build: clang -fsanitize=fuzzer (fuzz/run.sh).
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAP_SIZE (1 << 16)
#define DATA_SIZE (1 << 20)
#define MAX_ARGS 32

__attribute__((section("__libfuzzer_extra_counters"))) uint8_t extra_counters[MAP_SIZE];

static int shm_id = -1;
static uint8_t *shared;
static int control_fd, status_fd;
static pid_t child;

static void fail(const char *what)
{
    fprintf(stderr, "libfuzzer-dotnet: %s: %s\n", what, errno ? strerror(errno) : "unexpected");
    exit(1);
}

static void cleanup(void)
{
    if (shm_id >= 0) shmctl(shm_id, IPC_RMID, NULL);
    if (child > 0)
    {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
}

// Reads or writes exactly four bytes; 0 when the other end is gone.
static int transfer(int fd, void *value, int writing)
{
    size_t done = 0;
    while (done < 4)
    {
        ssize_t n = writing ? write(fd, (char *)value + done, 4 - done) : read(fd, (char *)value + done, 4 - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        done += (size_t)n;
    }
    return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *path = NULL;
    char *args[MAX_ARGS + 2];
    int count = 0;
    for (int i = 1; i < *argc; i++)
    {
        const char *a = (*argv)[i];
        if (strncmp(a, "--target_path=", 14) == 0) path = a + 14;
        else if (strncmp(a, "--target_arg=", 13) == 0 && count < MAX_ARGS) args[1 + count++] = (char *)a + 13;
    }
    if (!path)
    {
        fprintf(stderr, "libfuzzer-dotnet: --target_path=PROGRAM is required\n");
        exit(1);
    }
    args[0] = (char *)path;
    args[1 + count] = NULL;

    int control[2], status[2];
    if (pipe(control) || pipe(status)) fail("pipe");
    shm_id = shmget(IPC_PRIVATE, MAP_SIZE + DATA_SIZE, IPC_CREAT | IPC_EXCL | 0600);
    if (shm_id < 0) fail("shmget");
    atexit(cleanup);
    shared = shmat(shm_id, NULL, 0);
    if (shared == (void *)-1) fail("shmat");

    child = fork();
    if (child < 0) fail("fork");
    if (child == 0)
    {
        char value[16];
        close(control[1]);
        close(status[0]);
        snprintf(value, sizeof value, "%d", shm_id);
        setenv("__LIBFUZZER_SHM_ID", value, 1);
        snprintf(value, sizeof value, "%d", control[0]);
        setenv("__LIBFUZZER_CONTROL_PIPE_ID", value, 1);
        snprintf(value, sizeof value, "%d", status[1]);
        setenv("__LIBFUZZER_STATUS_PIPE_ID", value, 1);
        execvp(path, args);
        fail("exec of the target");
    }
    close(control[0]);
    close(status[1]);
    control_fd = control[1];
    status_fd = status[0];
    // A child that exits before it is ready (a bad target name, say) leaves the status pipe empty.
    signal(SIGPIPE, SIG_IGN);
    int32_t ready;
    if (!transfer(status_fd, &ready, 0))
    {
        fprintf(stderr, "libfuzzer-dotnet: the target %s exited before it was ready\n", path);
        exit(1);
    }
    // Both sides are attached: the segment goes away with the last detach, even if libFuzzer
    // ends by a signal (a crash) and atexit handlers do not run.
    shmctl(shm_id, IPC_RMID, NULL);
    shm_id = -1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > DATA_SIZE) return 0; // SharpFuzz's input area holds 1 MiB; libFuzzer's -max_len stays below
    memset(shared, 0, MAP_SIZE);
    memcpy(shared + MAP_SIZE, data, size);
    int32_t length = (int32_t)size, status = 0;
    int alive = transfer(control_fd, &length, 1) && transfer(status_fd, &status, 0);
    memcpy(extra_counters, shared, MAP_SIZE);
    if (!alive)
    {
        fprintf(stderr, "libfuzzer-dotnet: the target died on this input\n");
        __builtin_trap();
    }
    if (status != 0) __builtin_trap(); // the target printed the exception
    return 0;
}

/*
 * replay.c - runs LLVMFuzzerTestOneInput over saved inputs without
 * libFuzzer, so any C compiler can check the corpus (make fuzz-replay).
 *
 *   replay [-v] FILE|DIR...
 *
 * Directories are read one level deep, in name order, dotfiles skipped.
 * A crash or sanitizer report stops the run like in the fuzzer.  Besides,
 * the corpus files' names state what the parser must decide: a file named ok-*
 * must be read to its end as a well-formed response, one named bad-* must
 * be refused.  Other names (inputs the fuzzer found) are only run.
 */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern const char *rproxy_fuzz_verdict;

static int verbose, runs, accepted, failures;
static const char *current;          /* the input being run */

/* Names the input that crashed, from a signal handler or ASan/UBSan's
 * death callback (a weak reference: absent without a sanitizer). */
void __sanitizer_set_death_callback(void (*callback)(void))
    __attribute__((weak));

static void say_current(void)
{
    if (current) {
        const char *a = "\nfuzz replay: crashed on ";
        (void)!write(2, a, strlen(a));
        (void)!write(2, current, strlen(current));
        (void)!write(2, "\n", 1);
    }
}

static void on_signal(int sig)
{
    say_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    const char *name = base_name(path);
    unsigned char *data;
    long size;

    if (!f || fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET)) {
        perror(path);
        exit(2);
    }
    /* Exactly size bytes, as libFuzzer passes them: reading past the
     * input is an error ASan should see. */
    data = malloc(size ? (size_t)size : 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
        perror(path);
        exit(2);
    }
    fclose(f);

    current = path;
    LLVMFuzzerTestOneInput(data, (size_t)size);
    current = NULL;
    free(data);
    runs++;
    accepted += !rproxy_fuzz_verdict;
    if (verbose) {
        printf("%-48s %s\n", name,
               rproxy_fuzz_verdict ? rproxy_fuzz_verdict : "accepted");
        fflush(stdout);
    }
    if (!strncmp(name, "ok-", 3) && rproxy_fuzz_verdict) {
        printf("FAIL %s: should be accepted, refused: %s\n", path,
               rproxy_fuzz_verdict);
        failures++;
    }
    else if (!strncmp(name, "bad-", 4) && !rproxy_fuzz_verdict) {
        printf("FAIL %s: should be refused, was accepted\n", path);
        failures++;
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0, i;

    if (!d) {
        perror(dir);
        exit(2);
    }
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, cap * sizeof(*names));
            if (!names) {
                perror("realloc");
                exit(2);
            }
        }
        names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (!names[n]) {
            perror("malloc");
            exit(2);
        }
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), by_name);
    for (i = 0; i < n; i++) {
        struct stat sb;
        if (stat(names[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
            run_file(names[i]);
        }
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    int i;

    signal(SIGABRT, on_signal);
    signal(SIGSEGV, on_signal);
    signal(SIGBUS, on_signal);
    if (__sanitizer_set_death_callback) {
        __sanitizer_set_death_callback(say_current);
    }
    for (i = 1; i < argc; i++) {
        struct stat sb;

        if (!strcmp(argv[i], "-v")) {
            verbose = 1;
            continue;
        }
        if (stat(argv[i], &sb) != 0) {
            perror(argv[i]);
            return 2;
        }
        if (S_ISDIR(sb.st_mode)) {
            run_dir(argv[i]);
        }
        else {
            run_file(argv[i]);
        }
    }
    if (!runs) {
        fprintf(stderr, "usage: %s [-v] FILE|DIR...: no inputs\n", argv[0]);
        return 2;
    }
    if (failures) {
        printf("fuzz replay: %d of %d inputs FAILED\n", failures, runs);
        return 1;
    }
    printf("fuzz replay: %d inputs passed (%d read as well-formed, "
           "%d refused)\n", runs, accepted, runs - accepted);
    return 0;
}

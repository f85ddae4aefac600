/*
 * replay-main.c - runs a libFuzzer target over files without libFuzzer, so
 * the ordinary gcc build replays every committed corpus file (and every
 * crash that became a regression file) as part of `meson test`.
 *
 *   fuzz-<target>-replay FILE|DIR...
 *
 * A directory is read one level deep (corpus directories are flat). Each
 * input is read whole into a buffer of exactly its size, so ASan/valgrind
 * see an over-read of even one byte, as they would under libFuzzer.
 * Exit status: 0 when every input ran (a crash aborts the process, which
 * is the failure signal), 1 when an argument could not be read or no input
 * was found at all (an empty corpus would make the test meaningless).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

#define REPLAY_MAX_INPUT (4u << 20) /* libFuzzer's own default -max_len is far lower */

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    uint8_t *buf;
    size_t n;
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) < 0 || st.st_size < 0 || (uint64_t)st.st_size > REPLAY_MAX_INPUT) {
        fprintf(stderr, "replay: %s: unreadable or larger than %u bytes\n", path, REPLAY_MAX_INPUT);
        fclose(f);
        return -1;
    }
    /* malloc(0) may return NULL: keep one spare byte but pass the real size */
    buf = malloc((size_t)st.st_size ? (size_t)st.st_size : 1);
    if (!buf) {
        fclose(f);
        return -1;
    }
    n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (n != (size_t)st.st_size) {
        fprintf(stderr, "replay: %s: short read\n", path);
        free(buf);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir in name order (stable output). */
static int run_dir(const char *dir, unsigned *count)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **nn;
            cap = cap ? cap * 2 : 64;
            nn = realloc(names, cap * sizeof(*names));
            if (!nn) {
                r = -1;
                break;
            }
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (!names[n]) {
            r = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (r == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(path) < 0)
                r = -1;
            else
                (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return r;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    int bad = 0;
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            bad = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (run_dir(argv[i], &count) < 0)
                bad = 1;
        } else if (run_file(argv[i]) < 0) {
            bad = 1;
        } else {
            count++;
        }
    }
    printf("replayed %u input%s\n", count, count == 1 ? "" : "s");
    if (count == 0) {
        fprintf(stderr, "replay: no input found\n");
        return 1;
    }
    return bad;
}

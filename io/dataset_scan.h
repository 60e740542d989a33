/* Private to the converter: finding the classes and files of a source tree.
 * Policies (docs/dataset-format.md): dotfiles and dot-folders are ignored
 * and counted; symbolic links to files are followed, to directories only
 * at the class (and split) level, never inside a class folder, so a walk
 * cannot loop; names that are not UTF-8 are skipped with a warning (a class
 * folder with such a name is an error); sockets, devices and fifos are
 * skipped. */
#ifndef NN_IO_DATASET_SCAN_H
#define NN_IO_DATASET_SCAN_H

#include <stdint.h>

#include "base/status.h"

struct nn_scan_entry {
    char *rel;           /* path relative to the source root (invalid UTF-8 shown as \xNN) */
    int label;
    int split;           /* NN_SPLIT_* for a split source, -1 when the split is drawn */
    int folder;          /* which class folder (split x class) it came from */
    /* set by the scan for files skipped before decoding, else by decoding */
    char *reason;        /* why it is skipped; NULL if usable */
    int format, width, height;
    uint64_t size;       /* bytes, and their CRC-32C, to notice a file changed between decoding and writing */
    uint32_t crc;
};

struct nn_scan_folder {
    char *rel;           /* "ants" or "train/ants" */
    int label, split;
    long files;          /* entries found in it (usable or not) */
};

struct nn_scan {
    int presplit;        /* the source has train/ and validation/ (or val/) */
    int num_classes;
    char **classes;      /* sorted by byte order */
    int num_folders;
    struct nn_scan_folder *folders;
    long n, cap;
    struct nn_scan_entry *e;
    long hidden;
};

/* Walks src. Fails on: a missing or unreadable source, no class folders, a
 * class folder with no files, class sets that differ between splits,
 * both validation/ and val/, a class folder name that is not UTF-8. */
enum nn_status nn_scan_source(const char *src, struct nn_scan *out);
void nn_scan_free(struct nn_scan *s);

#endif

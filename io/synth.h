/* A synthetic folder-labelled photo set that needs no download: enough to
 * run the whole training path (convert, train, eval, export, predict) and
 * to test it. Classes differ by colour, so a network separates them in a
 * few steps. */
#ifndef NN_IO_SYNTH_H
#define NN_IO_SYNTH_H

#include <stdint.h>

#include "base/status.h"

/* Writes dir/train/class<c>/img<k>.jpg (train_per_class per class) and
 * dir/validation/class<c>/img<k>.jpg (val_per_class; no validation/ folder
 * when 0) for c < classes, each side x side pixels. Class c is noise around
 * a colour of its own (red, blue, green, yellow, purple, then again) with a
 * bright square at a random place. The same arguments give the same bytes.
 * dir may exist but must not already hold train/ or validation/. */
enum nn_status nn_synth_photos(const char *dir, int classes, int train_per_class, int val_per_class, int side,
                               uint64_t seed);

#endif

/* Fixtures of the training suites: a small synthetic photo dataset whose
 * classes differ by colour, converted like a user's would be. */
#ifndef NN_TESTS_TRAIN_DATA_H
#define NN_TESTS_TRAIN_DATA_H

/* Writes src_dir/<class>/img<k>.jpg for `classes` classes of `per_class`
 * train and `val_per_class` validation photos (src_dir/train/..., src_dir/
 * validation/...), side x side pixels: class c is a noisy image dominated by
 * a colour of its own with a bright square at a random place. */
void make_color_photos(const char *src_dir, int classes, int per_class, int val_per_class, int side, unsigned seed);

/* make_color_photos into dir/src, converted into dir/data; returns dir/data
 * (malloc'd). */
char *make_color_dataset(const char *dir, int classes, int per_class, int val_per_class, int side, unsigned seed);

#endif

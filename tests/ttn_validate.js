// The checks of The Things Network device repository's `npm run validate`
// (bin/validate.js of github.com/TheThingsNetwork/lorawan-devices), run on a
// folder laid out like that repository:
//
//   node tests/ttn_validate.js <root> [--vendor <id>]
//
// <root>/vendor/index.yaml lists vendors; <root>/vendor/<id>/ holds the
// vendor's files. As in bin/validate.js: the vendor index, the vendor's
// device index, every end device, every profile and every codec are checked
// against the repository's JSON schemas (ajv 6, tests/ttn_device_repository/);
// file names must be lower case and exist; firmware and hardware versions
// must agree; every codec example is run through the codec as the
// repository's tools/runscript does (here in QuickJS, see quickjs_hosts.js)
// and its whole output compared with the expected one by lodash.isequal;
// photos must have the extension of their content (image-type) and be at
// most 2000x2000 (image-size). The Go image decoding check
// (bin/validate-image) is done by the Python test with Pillow.
//
// Prints one line per check and, last, a JSON summary; exits 1 at the first
// failure, as bin/validate.js does.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const Ajv = require('ajv');
const yaml = require('js-yaml');
const isEqual = require('lodash.isequal');
const sizeOf = require('image-size');
const imageType = require('image-type');
const readChunk = require('read-chunk');
const { loadQuickJS, runJob } = require('./quickjs_hosts.js');

const SCHEMAS = path.join(__dirname, 'ttn_device_repository');
const ajv = new Ajv({ schemas: [require(path.join(SCHEMAS, 'payload.json')), require(path.join(SCHEMAS, 'schema.json'))] });
const compile = (def) => ajv.compile({ $ref: 'https://schema.thethings.network/devicerepository/1/schema#/definitions/' + def });
const validateVendorsIndex = compile('vendorsIndex');
const validateVendorIndex = compile('vendorIndex');
const validateEndDevice = compile('endDevice');
const validateEndDeviceProfile = compile('endDeviceProfile');
const validateEndDevicePayloadCodec = compile('endDevicePayloadCodec');

function fail(message) {
  console.error(message);
  process.exit(1);
}

function formatValidationErrors(errors) {
  return errors.map((e) => `${e.dataPath} ${e.message}`);
}

function requireFile(file) {
  const rel = path.relative(ROOT, file);
  if (rel.toLowerCase() !== rel) fail(`${rel} is not lowercase`);
  if (!fs.existsSync(file)) fail(`stat ${rel}: ENOENT`);
}

function load(file) {
  return yaml.load(fs.readFileSync(file));
}

const ROOT = path.resolve(process.argv[2]);
const vendorOption = process.argv.indexOf('--vendor') > 0 ? process.argv[process.argv.indexOf('--vendor') + 1] : '';
const summary = { vendors: 0, endDevices: 0, profiles: 0, codecs: 0, examples: 0, photos: [] };

async function main() {
  const QuickJS = await loadQuickJS();
  const vendors = load(path.join(ROOT, 'vendor', 'index.yaml'));
  if (!validateVendorsIndex(vendors)) fail(`vendor index is invalid: ${formatValidationErrors(validateVendorsIndex.errors)}`);
  console.log('vendor index: valid');

  for (const v of vendors.vendors) {
    if (vendorOption && v.id !== vendorOption) continue;
    const folder = path.join(ROOT, 'vendor', v.id);
    if (v.logo) requireFile(path.join(folder, v.logo));
    const vendorIndexPath = path.join(folder, 'index.yaml');
    if (!fs.existsSync(vendorIndexPath)) continue;
    summary.vendors++;
    const vendor = load(vendorIndexPath);
    if (!validateVendorIndex(vendor)) fail(`${v.id}: invalid index: ${formatValidationErrors(validateVendorIndex.errors)}`);
    console.log(`${v.id}: valid index`);

    const profilesSeen = {};
    for (const d of vendor.endDevices) {
      const key = `${v.id}: ${d}`;
      const endDevice = load(path.join(folder, `${d}.yaml`));
      if (!validateEndDevice(endDevice)) fail(`${key}: invalid: ${formatValidationErrors(validateEndDevice.errors)}`);
      console.log(`${key}: valid`);
      summary.endDevices++;

      for (const firmwareVersion of endDevice.firmwareVersions) {
        const fwKey = `${key}: ${firmwareVersion.version}`;
        if (Boolean(firmwareVersion.hardwareVersions) != Boolean(endDevice.hardwareVersions)) {
          fail(`${fwKey}: hardware versions are inconsistent: when used in end device, use in firmware versions (and vice-versa)`);
        }
        for (const hardwareVersion of firmwareVersion.hardwareVersions || []) {
          if (!endDevice.hardwareVersions.find((h) => h.version === hardwareVersion)) {
            fail(`${fwKey}: hardware version ${hardwareVersion} not found in supported hardware versions`);
          }
        }
        for (const region of Object.keys(firmwareVersion.profiles)) {
          const regionProfile = firmwareVersion.profiles[region];
          const regionKey = `${key}: ${region}`;
          const vendorID = regionProfile.vendorID ?? v.id;
          const profileId = `${vendorID}/${regionProfile.id}`;
          if (!profilesSeen[profileId]) {
            const profile = load(path.join(ROOT, 'vendor', vendorID, `${regionProfile.id}.yaml`));
            if (!validateEndDeviceProfile(profile)) {
              fail(`${regionKey}: profile ${profileId} invalid: ${formatValidationErrors(validateEndDeviceProfile.errors)}`);
            }
            profilesSeen[profileId] = true;
            summary.profiles++;
          }
          console.log(`${regionKey}: profile ${profileId} valid`);

          if (regionProfile.codec) {
            const codec = load(path.join(folder, `${regionProfile.codec}.yaml`));
            if (!validateEndDevicePayloadCodec(codec)) {
              fail(`${regionKey}: codec ${regionProfile.codec} invalid: ${formatValidationErrors(validateEndDevicePayloadCodec.errors)}`);
            }
            for (const hardwareVersion of firmwareVersion.hardwareVersions || ['']) {
              validatePayloadCodecs(QuickJS, folder, hardwareVersion, codec, `${key}: HW ${hardwareVersion}: FW ${firmwareVersion.version}: ${region}`);
            }
            console.log(`${regionKey}: payload codec ${regionProfile.codec} valid`);
          }
        }
      }

      if (endDevice.photos) {
        for (const p of [endDevice.photos.main].concat(endDevice.photos.other || [])) {
          const file = path.join(folder, p);
          requireFile(file);
          const type = imageType(readChunk.sync(file, 0, 12));
          const ext = p.split('.').pop();
          if (!type || (ext !== type.ext && !(ext === 'jpeg' && type.ext === 'jpg'))) fail(`${p} extension is incorrect, it should be ${type && type.ext}`);
          const dimensions = sizeOf(file);
          if (dimensions.width > 2000 || dimensions.height > 2000) {
            fail(`${key}: image ${p} too large: maximum is 2000x2000 but loaded ${dimensions.width}x${dimensions.height}`);
          }
          console.log(`${key}: ${p} has the right extension and dimensions`);
          summary.photos.push(path.relative(ROOT, file));
        }
      }
    }
  }
  console.log(JSON.stringify(summary));
}

// bin/validate.js validatePayloadCodecs: each of the three routines' examples
// (those for this hardware version), the output compared whole.
function validatePayloadCodecs(QuickJS, folder, hardwareVersion, payloadEncoding, key) {
  summary.codecs++;
  for (const { def, routine } of [
    { def: payloadEncoding.uplinkDecoder, routine: 'decodeUplink' },
    { def: payloadEncoding.downlinkEncoder, routine: 'encodeDownlink' },
    { def: payloadEncoding.downlinkDecoder, routine: 'decodeDownlink' },
  ]) {
    if (!def) continue;
    const fileName = path.join(folder, def.fileName);
    requireFile(fileName);
    const codec = fs.readFileSync(fileName, 'utf8');
    for (const e of def.examples || []) {
      if (e.hardwareVersions && e.hardwareVersions.indexOf(hardwareVersion) === -1) continue;
      const res = runJob(QuickJS, { host: 'runscript', fn: routine, input: e.input, codec });
      if (res.error) fail(`${key}: ${routine}: ${e.description}: ${res.error}`);
      if (!isEqual(e.output, res.ok)) fail(`${key}: ${routine}: output ${JSON.stringify(res.ok)} does not match ${JSON.stringify(e.output)}`);
      console.log(`${key}: ${routine}: ${e.description} has correct output`);
      summary.examples++;
    }
  }
}

main().catch((e) => fail(String((e && e.stack) || e)));

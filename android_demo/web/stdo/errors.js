// The one error a bad bundle raises: its message says what is wrong, and nothing is played.
export class BundleError extends Error {
  constructor(message) {
    super(message);
    this.name = 'BundleError';
  }
}

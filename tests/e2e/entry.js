// Bundle entry: exposes the unmodified npm tracker class to the test site's pages.
import Tracker from '@openreplay/tracker';

window.ORTracker = Tracker;

// A cheap summary of files on disk (sizes, modification times, inodes; a directory's entries)
// to notice that a file changed without reading it. Symlinks are followed, so the atomic
// `..data` swap Kubernetes does on a mounted Secret shows as a change.
#pragma once

#include <string>
#include <vector>

namespace vrouter::app {

// Missing files are part of the fingerprint too (their appearance is a change).
std::string FilesFingerprint(const std::vector<std::string>& paths);

}  // namespace vrouter::app

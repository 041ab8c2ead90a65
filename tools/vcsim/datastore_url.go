package main

// datastore_url.go gives every datastore the `summary.url` a vCenter
// reports, `ds:///vmfs/volumes/<uuid>/`. The stock simulator puts its
// local temporary directory there, which no vSphere client would accept as
// a datastore URL (the CSI driver's `datastoreurl` StorageClass parameter
// takes exactly the vCenter form). Only the summary changes: the
// simulator's own file operations use `info.url`, which keeps the local
// directory.

import (
	"crypto/sha1"
	"fmt"

	"github.com/vmware/govmomi/simulator"
)

// vmfsURL is a stable VMFS-style URL for a datastore: its volume UUID is
// derived from the managed object id, as real UUIDs are fixed per volume.
func vmfsURL(id string) string {
	sum := sha1.Sum([]byte("vcsim-datastore:" + id))
	return fmt.Sprintf("ds:///vmfs/volumes/%x-%x-%x-%x/", sum[0:4], sum[4:8], sum[8:10], sum[10:16])
}

// SetDatastoreURLs rewrites the summary URL of every datastore in the model.
func SetDatastoreURLs() {
	for _, obj := range simulator.Map.All("Datastore") {
		ds, ok := obj.(*simulator.Datastore)
		if !ok {
			continue
		}
		ds.Summary.Url = vmfsURL(ds.Self.Value)
	}
}
